"""Bundles run at their time tags, on the event loop's clock.

An OSC time tag is absolute NTP wall-clock time (``time.time()`` plus the NTP epoch offset).
"Now" is the wall clock when the bundle is processed. Tags are mapped onto the loop's monotonic
clock (``loop.time()``, the same clock as ``time.monotonic()``) as ``due = tag - offset`` with
``offset = time.time() - loop.time()``; the offset is re-read for every bundle but only updated
when it moved by more than 1 ms (a stepped wall clock), so equal tags get equal due times and keep
their arrival order, and a bundle already scheduled is not moved by a later clock step. Immediate
(1) or past tags run at once, in the network callback; future ones run from ``loop.call_at`` (the
loop never sleeps for them). A nested bundle never runs before its parent (its effective time is
the later of the two). ``Incoming.arrival`` is always ``time.monotonic()`` at the packet's arrival,
scheduled or not. Waiting bundles are bounded in count and bytes, per client and in all, and due
ones run in slices (see :mod:`.schedule`); a timed bundle that falls due while others due before
it still wait queues behind them, so equal tags keep arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .codec import Bundle, Message
from .peer import Peer, TransportStats
from .schedule import Schedule


class Timed:
    """Runs bundles' messages when due: ``deliver`` each message, ``refuse`` a bundle that cannot wait
    (too far ahead, or its client's share full), ``budget`` opens a reply budget for a scheduled
    packet's messages (its protocol) and closes it (None) when they have run."""

    def __init__(self, deliver: Callable[[Message, Peer, float], None], refuse: Callable[[Peer, str], None],
                 budget: Callable[[str | None], None], stats: TransportStats, *, max_scheduled: int,
                 max_delay: float) -> None:
        self._deliver = deliver
        self._refuse = refuse
        self._budget = budget
        self.stats = stats
        self.max_delay = max_delay
        self._schedule = Schedule(max_scheduled)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon: asyncio.Handle | None = None  # the next slice of due bundles
        self._offset = 0.0  # time.time() - loop.time(), updated only when it moves by > 1 ms
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Schedule on ``loop`` from now on."""
        self._loop = loop

    def stop(self) -> None:
        """Drop the bundles not yet due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._schedule.clear()
        self._loop = None

    def bundle(self, bundle: Bundle, peer: Peer, arrival: float) -> None:
        """Deliver due groups now, in order; schedule future ones on the loop clock."""
        assert self._loop is not None
        now_loop = self._loop.time()
        offset = time.time() - now_loop
        if abs(offset - self._offset) > 0.001:  # first bundle, or the wall clock was stepped
            self._offset = offset
        groups: list[tuple[float | None, list[Message]]] = []
        _flatten(bundle, None, groups)
        schedule = self._schedule
        for when, msgs in groups:
            due = now_loop if when is None else when - self._offset
            if due <= now_loop and (when is None or not schedule.busy(due)):
                for msg in msgs:
                    self._deliver(msg, peer, arrival)
            elif due - now_loop > self.max_delay:
                ahead = due - now_loop
                self._refuse(peer, f"bundle time tag {ahead:.1f} s ahead exceeds {self.max_delay} s")
            elif (refused := schedule.add(due, msgs, peer, arrival)) is not None:
                self._refuse(peer, refused)
            else:
                self.stats.bundles_scheduled += 1
        self._arm()

    def _arm(self) -> None:
        """Run the next slice soon when some are due, else set the timer for the next due time."""
        when = self._schedule.next_due()
        if when is None or self._loop is None or self._soon is not None:
            return  # nothing waits, stopped, or the slice already queued re-arms when it has run
        if when < 0:
            self._soon = self._loop.call_soon(self._on_soon)
            return
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._fire()

    def _on_soon(self) -> None:
        self._soon = None
        self._fire()

    def _fire(self) -> None:
        """Run one slice of the due messages; the loop serves other clients before the next."""
        assert self._loop is not None
        group: tuple[Peer, float] | None = None
        for msg, peer, arrival in self._schedule.take(self._loop.time() + 0.0005):
            if (peer, arrival) != group:  # one scheduled bundle, one reply budget (its packet was answered)
                group = (peer, arrival)
                self._budget(peer.protocol)
            self._deliver(msg, peer, arrival)
        self._budget(None)
        self._arm()


def _flatten(bundle: Bundle, parent: float | None, out: list[tuple[float | None, list[Message]]]) -> None:
    """Append (effective Unix time or None for now, messages) groups in packet order."""
    tt = bundle.timetag
    when = parent if tt == 1 else (tt.to_unix() if parent is None else max(parent, tt.to_unix()))
    for el in bundle.elements:
        if isinstance(el, Bundle):
            _flatten(el, when, out)
        elif out and out[-1][0] == when:
            out[-1][1].append(el)
        else:
            out.append((when, [el]))
