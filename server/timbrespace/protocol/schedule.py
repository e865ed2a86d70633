"""Bundles waiting for their time tag: bounded in count and bytes, for all clients and per client.

A future-dated bundle holds its decoded messages until it is due, so one client could otherwise
fill the server's memory, or the shared limit, for up to ``max_delay``.  Each client (one
:class:`Peer`: a UDP source address or a TCP connection) may hold :data:`CLIENT_PENDING` groups
and :data:`CLIENT_PENDING_BYTES`; all clients of one host four times that, so that a host with
many ports or connections cannot fill the rest; all clients together :data:`MAX_PENDING_BYTES`
and the transport's ``max_scheduled``.  A client that fills its share is refused, the others
are not.

Bytes are estimated from the decoded messages (:func:`held_bytes`), since decoding makes a
packet several times larger than its wire size (an argument-less message is 12 bytes on the
wire and ~200 in memory).

Groups that fall due run in slices of :data:`FIRE_SLICE` messages, one slice per turn of the event
loop, in (due time, arrival) order: a burst at one time tag delays other clients' requests by at
most one slice.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import NamedTuple, TypeVar

from .codec import Message
from .peer import Peer

CLIENT_PENDING = 1000
"""Scheduled groups (a bundle, or one nested bundle with its own time) one client may hold."""
CLIENT_PENDING_BYTES = 4 << 20
"""Estimated bytes of scheduled messages one client may hold."""
HOST_PENDING, HOST_PENDING_BYTES = 4 * CLIENT_PENDING, 4 * CLIENT_PENDING_BYTES
"""The same for all clients of one source host."""
MAX_PENDING_BYTES = 32 << 20
"""Estimated bytes of scheduled messages all clients together may hold."""
FIRE_SLICE = 256
"""Due messages run per turn of the event loop."""
K = TypeVar("K")
_MESSAGE_BYTES = 200  # a decoded Message: the tuple, its args tuple, the address string
_ARG_BYTES = 40  # one argument: its slot and a number object


def held_bytes(msgs: list[Message]) -> int:
    """An upper estimate of the memory ``msgs`` hold, decoded."""
    n = 0
    for m in msgs:
        n += _MESSAGE_BYTES + len(m.address)
        stack: list[tuple[object, ...] | list[object]] = [m.args]
        while stack:
            for a in stack.pop():
                n += _ARG_BYTES
                if isinstance(a, (str, bytes)):
                    n += len(a)
                elif isinstance(a, list):
                    stack.append(a)
    return n


class _Group(NamedTuple):
    due: float
    seq: int  # arrival order: equal due times run in the order they arrived
    msgs: list[Message]
    peer: Peer
    arrival: float
    cost: int


class Schedule:
    """The waiting groups (a heap by due time) and the due ones not yet run (a queue)."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self._heap: list[_Group] = []
        self._ready: deque[_Group] = deque()
        self._next = 0  # index of the next message of _ready[0] to run
        self._seq = 0
        self._bytes = 0
        self._per_client: dict[Peer, list[int]] = {}  # peer -> [groups, bytes]
        self._per_host: dict[str, list[int]] = {}  # host -> [groups, bytes]

    def __len__(self) -> int:
        return len(self._heap) + len(self._ready)

    def add(self, due: float, msgs: list[Message], peer: Peer, arrival: float) -> str | None:
        """Schedule ``msgs`` at loop time ``due``; returns why not when a limit is reached."""
        cost = held_bytes(msgs)
        mine = self._per_client.get(peer)
        if mine is not None and mine[0] >= CLIENT_PENDING:
            return f"too many scheduled bundles from this client ({CLIENT_PENDING} pending)"
        if (mine[1] if mine else 0) + cost > CLIENT_PENDING_BYTES:
            return f"scheduled bundles from this client would hold more than {CLIENT_PENDING_BYTES} bytes"
        host = self._per_host.get(peer.host)
        if host is not None and (host[0] >= HOST_PENDING or host[1] + cost > HOST_PENDING_BYTES):
            return (f"scheduled bundles from {peer.host} would exceed {HOST_PENDING} bundles or "
                    f"{HOST_PENDING_BYTES} bytes")
        if len(self) >= self.max_pending:
            return f"too many scheduled bundles ({self.max_pending} pending)"
        if self._bytes + cost > MAX_PENDING_BYTES:
            return f"scheduled bundles would hold more than {MAX_PENDING_BYTES} bytes"
        for share in (mine or self._per_client.setdefault(peer, [0, 0]),
                      host or self._per_host.setdefault(peer.host, [0, 0])):
            share[0] += 1
            share[1] += cost
        self._bytes += cost
        self._seq += 1
        heapq.heappush(self._heap, _Group(due, self._seq, msgs, peer, arrival, cost))
        return None

    def busy(self, now: float) -> bool:
        """True while groups due by ``now`` wait to run (a new one must queue behind them)."""
        return bool(self._ready) or bool(self._heap and self._heap[0].due <= now)

    def next_due(self) -> float | None:
        """When the next group falls due: None when none waits, now-ish when some are ready."""
        if self._ready:
            return -1.0
        return self._heap[0].due if self._heap else None

    def take(self, now: float, most: int = FIRE_SLICE) -> list[tuple[Message, Peer, float]]:
        """Up to ``most`` messages of the groups due by ``now``, in (due, arrival) order."""
        heap, ready = self._heap, self._ready
        while heap and heap[0].due <= now:
            ready.append(heapq.heappop(heap))
        out: list[tuple[Message, Peer, float]] = []
        while len(out) < most and ready:
            g = ready[0]
            end = min(len(g.msgs), self._next + most - len(out))
            out += [(m, g.peer, g.arrival) for m in g.msgs[self._next : end]]
            self._next = end
            if end == len(g.msgs):
                ready.popleft()
                self._next = 0
                self._release(g)
        return out

    def clear(self) -> None:
        self._heap.clear()
        self._ready.clear()
        self._next = self._bytes = 0
        self._per_client.clear()
        self._per_host.clear()

    def _release(self, g: _Group) -> None:
        self._bytes -= g.cost
        _unshare(self._per_client, g.peer, g.cost)
        _unshare(self._per_host, g.peer.host, g.cost)


def _unshare(shares: dict[K, list[int]], key: K, cost: int) -> None:
    share = shares[key]
    share[0] -= 1
    share[1] -= cost
    if not share[0]:
        del shares[key]
