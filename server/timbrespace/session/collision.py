"""Who moves a layer's map point when several people move it at once (config ``sessions.collision``).

- ``last``: the latest move wins (a shared XY pad).
- ``lock``: the first client to move holds the point until it has not moved for ``hold`` seconds
  (or leaves); the others' moves are refused, naming the holder.
- ``blend``: the layer sounds the mean of the latent points of everyone who moved within ``hold``
  seconds: a latent space is the one place where two gestures can be mixed instead of fought over.

Each client's own point is kept (``Client.point``) and shown (``/cursor``) under every policy;
the points here are only those that count now.
"""

from __future__ import annotations

from typing import Literal

from timbrespace.session.clients import Client

Policy = Literal["last", "lock", "blend"]
POLICIES: tuple[Policy, ...] = ("last", "lock", "blend")
#: Seconds a touch may last (config ``layers[N].hold``, ``/collision``).
HOLD_RANGE = (0.05, 3600.0)
Point = tuple[float, float]


class PointHeld(Exception):
    """A move refused under ``lock``; the text names the holder and when the point frees."""


class Collision:
    """The policy of one layer's map point and who touched it lately."""

    def __init__(self, policy: Policy = "last", hold: float = 1.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"collision policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.policy = policy
        self.hold = float(hold)
        #: Client -> when it last moved and where to; only those within ``hold`` are kept (pruned at each move).
        self._touch: dict[Client, tuple[float, Point]] = {}
        self._holder: Client | None = None
        self.refused = 0

    def move(self, c: Client, point: Point, now: float) -> tuple[Point, ...]:
        """``c`` moved to ``point``: the points the layer sounds now (their latent mean under blend).

        PointHeld under ``lock`` while someone else holds the point.
        """
        self._prune(now)
        if self.policy == "lock":
            h = self._holder
            if h is not None and h is not c and h in self._touch:
                self.refused += 1
                raise PointHeld(f"the point is held by {h.label} (id {h.id}) until it stops moving for "
                                f"{self.hold:g} s (sessions.collision: lock)")
            self._holder = c
        self._touch[c] = (now, point)
        if self.policy == "blend":
            return tuple(p for _, p in self._touch.values())
        return (point,)

    def forget(self, c: Client) -> None:
        """``c`` left: it neither holds nor touches the point any more."""
        self._touch.pop(c, None)
        if self._holder is c:
            self._holder = None

    def touching(self, now: float) -> int:
        """How many clients moved the point within ``hold``."""
        self._prune(now)
        return len(self._touch)

    def _prune(self, now: float) -> None:
        for t in [t for t, (at, _) in self._touch.items() if now - at >= self.hold]:
            del self._touch[t]
        if self._holder is not None and self._holder not in self._touch:
            self._holder = None
