"""What a UDP datagram must pass before it is decoded: its source's rate, and its share of the time.

Two drops, both before any decoding, so each costs a read and a lookup: datagrams over the
configured rate (``network.udp_rate_limit``, :mod:`.source_limit`), and, while the socket's receive
buffer backs up, those of a source that took more than its share of the server's time
(:mod:`.shed`). Both are counted; a source is told why with one ``/fail`` a second at most (a reply
to every dropped datagram would make the server an amplifier), and the log is rate-limited.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from timbrespace.ratelog import RateLimitedLog

from .peer import TransportStats
from .replies import encode_fail
from .shed import Backlog, LoadShare
from .source_limit import SourceLimits

__all__ = ["UdpGate"]


class UdpGate:
    """The drops before decoding; ``send(data, addr)`` tells a source why."""

    def __init__(self, rate: float, burst: int, stats: TransportStats, send: Callable[[bytes, Any], None],
                 log: RateLimitedLog) -> None:
        #: Datagrams per second one source (host, port) may send, bursts of ``burst``; 0: no limit.
        self.rate = rate
        self._limits = SourceLimits(rate, burst)
        #: Each source's share of the server's time: charged by the transport as it handles datagrams.
        self.load = LoadShare()
        self._backlog: Backlog | None = None
        self._stats = stats
        self._send = send
        self._log = log

    def attach(self, sock: socket.socket) -> None:
        """Watch ``sock``'s receive buffer (once its size is set)."""
        self._backlog = Backlog(sock)

    def backed_up(self) -> bool:
        """Whether the receive buffer is backing up: while it is, heavy sources are shed."""
        return self._backlog is not None and self._backlog.high()

    def rate_limited(self, addr: Any, now: float) -> bool:
        """Whether this datagram exceeds its source's rate (then it is dropped unread and counted)."""
        over, tell = self._limits.over(addr, now)
        if not over:
            return False
        self._stats.rate_limited += 1
        if tell:
            rate = self.rate
            self._log.warning("UDP source %s:%s over %g packets/s: dropping its packets", addr[0], addr[1], rate)
            self._send(encode_fail("", f"rate limit: more than {rate:g} packets/s from this source; "
                                       "packets dropped unread", 256), addr)
        return True

    def shed(self, addr: Any, now: float) -> bool:
        """Whether this datagram's source is over its share of the time (then it is dropped unread
        and counted); asked only while the buffer backs up."""
        over, tell = self.load.shed(addr, now)
        if not over:
            return False
        self._stats.shed += 1
        if not tell:
            return True
        pct = round(100 * self.load.fraction(addr, now))
        self._log.warning("UDP source %s:%s took %d%% of the server's time while its receive buffer backed "
                          "up: dropping its datagrams unread", addr[0], addr[1], pct)
        self._send(encode_fail("", f"server overloaded: this source's datagrams took {pct}% of its time "
                                   "while others waited; datagrams dropped unread until it sends less", 256), addr)
        return True
