"""The clients of a session: who they are, what they own, when they leave.

A client is a UDP source address or one TCP connection. Anyone on the network can send from as
many source addresses as it likes, so clients are kept in two bounded tables:

- *passers-by* (a one-shot ``oscsend``, a monitor polling ``/status``): they own nothing, so they
  are forgotten least recently heard first, at most :data:`MAX_PASSERS`, and after
  :data:`CLIENT_TIMEOUT` of silence, a few at a time as messages arrive (amortised O(1); nothing
  ever scans the table, ``/status`` included);
- *members*: clients that said ``/hello``, hold a note or subscribed to feedback. They have
  something to lose, so they are never evicted by newcomers: at most ``max_clients`` of them (a
  newcomer past that is refused with a /fail), and they leave only by ``/bye``, by closing their
  TCP connection, or after ``client_timeout`` seconds of silence (UDP). When a member leaves, its
  notes are released (the owner's ``on_leave``).

``/hello NAME`` gives the client the id that name had before (scsynth's rejoin: a restarted client
or one whose address changed after a network drop gets its id and its notes back).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from timbrespace.protocol.peer import Peer

MAX_PASSERS = 4096
"""Passers-by remembered at most (a few hundred bytes each)."""
CLIENT_TIMEOUT = 10.0
"""A passer-by that sent nothing for this long (seconds) no longer counts.

``/status`` reports "clients" as who is playing now. Every ``oscsend`` call is a new source port,
so with a long window a few one-shot commands looked like a room full of players. Members (who
said /hello, hold notes or subscribed) are counted until they leave.
"""
MAX_NAMES = 4096
"""Names whose id is remembered for a rejoin, at most (least recently used forgotten first)."""
_PRUNE_STEP = 2  # stale passers-by dropped per message heard: amortised O(1), drains any backlog

ClientKey = tuple[str, str, int, int]
NoteKey = tuple[int, str, int]  # (layer, engine, key or slot)

MAX_TOUCHES = 10
"""Fingers (``/touch``) one client holds down at once at most: two hands' worth. Each is a voice
and a cursor every subscriber of its layer is sent, so they are bounded per client."""
MAX_TOUCH_ID = 255
"""The largest finger id a client may choose (``/touch ID ...``)."""


@dataclass(eq=False, slots=True)
class Touch:
    """One finger down (``/touch``): where it plays, its note's token in that engine, its point."""

    layer: int
    engine: str
    token: int
    point: tuple[float, float]


class SessionFull(Exception):
    """No room for another member; the text is the /fail reason."""


def client_key(peer: Peer) -> ClientKey:
    """The key a peer is known by."""
    return (peer.protocol, peer.host, peer.port, peer.conn_id)


@dataclass(eq=False, slots=True)
class Client:
    """One client: its identity, where its messages come from and what it owns."""

    id: int
    peer: Peer
    admin: bool
    last: float
    name: str = ""
    layer: int = 0
    member: bool = False
    #: Subscribed to feedback until this time (``inf`` over TCP: until the connection closes).
    notify_until: float = 0.0
    #: Notes it started and nobody has released yet.
    notes: set[NoteKey] = field(default_factory=set)
    #: Its own last map point (/latent), shown to the others as /cursor.
    point: tuple[float, float] | None = None
    #: Its fingers down (``/touch``), by the id it gave each.
    touches: dict[int, Touch] = field(default_factory=dict)
    #: Token bucket of the per-client rate limit: tokens left and when they were counted.
    tokens: float = -1.0
    counted: float = 0.0
    #: When it was last told it is over its rate limit (once a second at most).
    told_limited: float = float("-inf")

    @property
    def key(self) -> ClientKey:
        """Its key in the tables."""
        return client_key(self.peer)

    @property
    def proved(self) -> bool:
        """Whether its address is proved (a TCP handshake, or a /hello over UDP) for larger replies."""
        return self.peer.protocol == "tcp" or bool(self.name)

    @property
    def label(self) -> str:
        """Its name, or where it sends from."""
        if self.name:
            return self.name
        p = self.peer
        return f"tcp:{p.host}#{p.conn_id}" if p.protocol == "tcp" else f"{p.host}:{p.port}"


class Sessions:
    """The clients heard from, bounded; see the module doc."""

    def __init__(
        self,
        *,
        max_clients: int = 64,
        client_timeout: float = 60.0,
        is_admin: Callable[[str], bool] = lambda host: False,
        passers: int = MAX_PASSERS,
        passer_timeout: float = CLIENT_TIMEOUT,
    ) -> None:
        self.max_clients = max_clients
        self.client_timeout = client_timeout
        self.is_admin = is_admin
        self.passer_limit = passers
        self.passer_timeout = passer_timeout
        self._passers: OrderedDict[ClientKey, Client] = OrderedDict()
        self._members: dict[ClientKey, Client] = {}
        self._ids_of_members: dict[int, Client] = {}
        self._names: OrderedDict[str, int] = OrderedDict()
        self._ids = itertools.count(1)
        self._stale_at = float("-inf")  # no passer-by can be stale before this time
        #: Called with a member that leaves and why (its notes are still in ``client.notes``).
        self.on_leave: Callable[[Client, str], None] | None = None
        #: Called with a client that became a member.
        self.on_join: Callable[[Client], None] | None = None
        self.left = 0  # members that left, all reasons
        self.refused = 0  # newcomers refused for max_clients

    # -- arrivals ---------------------------------------------------------------------------------
    def heard(self, peer: Peer, now: float) -> Client:
        """The client ``peer`` is, heard at ``now`` (monotonic seconds); a new passer-by if unknown."""
        key = (peer.protocol, peer.host, peer.port, peer.conn_id)
        c = self._members.get(key)
        if c is not None:
            c.last = now
            return c
        passers = self._passers
        c = passers.get(key)
        if c is None:
            c = Client(next(self._ids), peer, self.is_admin(peer.host), now)
            passers[key] = c
            if len(passers) > self.passer_limit:
                passers.popitem(last=False)
        else:
            c.last = now
            passers.move_to_end(key)
        if now >= self._stale_at:
            self._prune(now, _PRUNE_STEP)
        return c

    def join(self, c: Client) -> None:
        """Make ``c`` a member (it owns something now); SessionFull when there is no room."""
        if c.member:
            return
        if len(self._members) >= self.max_clients:
            self.refused += 1
            raise SessionFull(f"the session is full ({self.max_clients} clients, sessions.max_clients); "
                              "try again when someone leaves")
        self._passers.pop(c.key, None)
        c.member = True
        self._members[c.key] = c
        self._ids_of_members[c.id] = c
        if self.on_join is not None:
            self.on_join(c)

    def hello(self, c: Client, name: str, now: float) -> Client:
        """``c`` says it is ``name``: it joins, with the id that name had before when there was one."""
        old_id = self._names.get(name)
        if old_id is not None and old_id != c.id:
            old = self._ids_of_members.get(old_id)
            if old is not None and old is not c:
                # The same player from a new address (a restart, a network drop): it takes over the
                # old identity and its notes, which it can now release itself.
                self._forget(old)
                c.notes |= old.notes
                old.notes.clear()
                for tid, t in old.touches.items():
                    if tid in c.touches:  # the new one uses this id already: the old finger goes on under a
                        # free id, unaddressed but owned, so that /panic or leaving releases it (never stuck)
                        tid = next(i for i in range(MAX_TOUCH_ID + 1) if i not in c.touches and i not in old.touches)
                    c.touches[tid] = t
                old.touches.clear()
            if c.member:
                del self._ids_of_members[c.id]
                self._ids_of_members[old_id] = c
            c.id = old_id
        c.name = name
        self._names[name] = c.id
        self._names.move_to_end(name)
        if len(self._names) > MAX_NAMES:
            self._names.popitem(last=False)
        c.last = now
        self.join(c)
        return c

    # -- departures -------------------------------------------------------------------------------
    def leave(self, c: Client, why: str) -> None:
        """``c`` leaves (``/bye``, its connection closed, silence); its owner releases its notes."""
        if not c.member:
            self._passers.pop(c.key, None)
            return
        self._forget(c)
        self.left += 1
        if self.on_leave is not None:
            self.on_leave(c, why)
        c.notes.clear()
        c.touches.clear()
        c.notify_until = 0.0

    def settle(self, c: Client) -> None:
        """A member with nothing left to lose (no name, note, finger or subscription) leaves quietly.

        A script of one-shot ``oscsend`` note-ons would otherwise fill the session with members
        until their timeout, each owning nothing once its note-off came.
        """
        if c.member and not c.name and not c.notes and not c.touches and c.notify_until == 0.0:
            self.leave(c, "owns nothing any more")

    def disconnected(self, peer: Peer) -> None:
        """A TCP connection closed: its client leaves."""
        key = client_key(peer)
        c = self._members.get(key) or self._passers.get(key)
        if c is not None:
            self.leave(c, "its connection closed")

    def housekeeping(self, now: float) -> None:
        """Members silent for ``client_timeout`` (UDP) leave; stale passers-by are dropped."""
        if self.client_timeout > 0:
            cutoff = now - self.client_timeout
            for c in [c for c in self._members.values() if c.peer.protocol == "udp" and c.last < cutoff]:
                self.leave(c, f"silent for {self.client_timeout:g} s")
        self.count(now)

    def _forget(self, c: Client) -> None:
        if self._members.pop(c.key, None) is not None:
            self._ids_of_members.pop(c.id, None)
        self._passers.pop(c.key, None)
        c.member = False

    # -- queries ----------------------------------------------------------------------------------
    def count(self, now: float) -> int:
        """Members, plus passers-by heard within the passer-by timeout."""
        if now >= self._stale_at:
            self._prune(now, self.passer_limit)
        return len(self._members) + len(self._passers)

    def members(self) -> Iterator[Client]:
        """The members, in joining order."""
        return iter(list(self._members.values()))

    def member(self, client_id: int) -> Client | None:
        """The member with this id, if any."""
        return self._ids_of_members.get(client_id)

    def __len__(self) -> int:
        return len(self._members) + len(self._passers)

    def _prune(self, now: float, most: int) -> None:
        # Times are in arrival order except for scheduled bundles (stamped with their packet's
        # arrival), so a stale entry behind a fresher one waits its turn: the count errs high.
        passers = self._passers
        cutoff = now - self.passer_timeout
        for _ in range(most):
            if not passers:
                self._stale_at = now  # the next client heard sets it from its own time
                return
            key = next(iter(passers))
            t = passers[key].last
            if t >= cutoff:
                self._stale_at = t + self.passer_timeout  # nothing can be stale before then
                return
            del passers[key]
