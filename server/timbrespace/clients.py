"""The clients the server has heard from: a bounded table, least recently heard first.

A client is known by ``(protocol, host, port, conn_id)`` (a UDP source address or one TCP
connection).  Anyone on the network can send from as many source addresses as it likes, so the
table holds at most :data:`MAX_CLIENTS` and forgets the least recently heard in O(1); entries older
than the timeout are dropped from the old end a few at a time as messages arrive, so nothing ever
scans the whole table (``/status`` included).
"""

from __future__ import annotations

from collections import OrderedDict

from timbrespace.protocol.peer import Peer

MAX_CLIENTS = 4096
"""Clients remembered at most (each entry is a few hundred bytes: ~1.5 MiB in all)."""
CLIENT_TIMEOUT = 60.0
"""A client that sent nothing for this long (seconds) no longer counts."""
_PRUNE_STEP = 2  # stale entries dropped per message heard: amortised O(1), drains any backlog

ClientKey = tuple[str, str, int, int]


def client_key(peer: Peer) -> ClientKey:
    """The key a peer is known by."""
    return (peer.protocol, peer.host, peer.port, peer.conn_id)


class ClientRegistry:
    """Clients by last message time, oldest first; bounded by :data:`MAX_CLIENTS`."""

    def __init__(self, limit: int = MAX_CLIENTS, timeout: float = CLIENT_TIMEOUT) -> None:
        self.limit = limit
        self.timeout = timeout
        self._last: OrderedDict[ClientKey, float] = OrderedDict()
        self._stale_at = float("-inf")  # no entry can be stale before this time

    def heard(self, peer: Peer, now: float) -> None:
        """``peer`` sent a message at ``now`` (monotonic seconds)."""
        last = self._last
        key = (peer.protocol, peer.host, peer.port, peer.conn_id)
        last[key] = now
        last.move_to_end(key)
        if len(last) > self.limit:
            last.popitem(last=False)
        if now >= self._stale_at:
            self._prune(now, _PRUNE_STEP)

    def count(self, now: float) -> int:
        """Clients heard within the timeout (stale ones at the old end are dropped first)."""
        if now >= self._stale_at:
            self._prune(now, self.limit)
        return len(self._last)

    def _prune(self, now: float, most: int) -> None:
        # Times are in arrival order except for scheduled bundles (stamped with their packet's
        # arrival), so a stale entry behind a fresher one waits its turn: the count errs high.
        last = self._last
        cutoff = now - self.timeout
        for _ in range(most):
            if not last:
                self._stale_at = now  # the next client heard sets it from its own time
                return
            key = next(iter(last))
            t = last[key]
            if t >= cutoff:
                self._stale_at = t + self.timeout  # nothing can be stale before then
                return
            del last[key]

    def __len__(self) -> int:
        return len(self._last)
