"""A token bucket per UDP source (host, port), checked before a datagram is decoded.

The drop comes before any decoding, so a flood costs a read and a dict lookup per packet, and
other clients' packets and connections keep their turn on the loop. The flooder is told once a
second at most: answering every dropped packet would make the server an amplifier itself.
"""

from __future__ import annotations

from typing import Any

#: Sources whose bucket is kept (~150 bytes each); past it the table starts over.
MAX_SOURCES = 4096


class SourceLimits:
    """``rate`` datagrams a second per source, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[Any, list[float]] = {}  # source -> [tokens, last refill, last told]

    def over(self, addr: Any, now: float) -> tuple[bool, bool]:
        """Whether this datagram from ``addr`` is over its source's rate (to be dropped), and
        whether its source is to be told (once a second at most)."""
        b = self._buckets.get(addr)
        if b is None:
            if len(self._buckets) >= MAX_SOURCES:
                self._buckets.clear()
            b = self._buckets[addr] = [float(self.burst), now, -1e9]
        tokens = min(b[0] + (now - b[1]) * self.rate, float(self.burst))
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return False, False
        b[0] = tokens
        if now - b[2] >= 1.0:
            b[2] = now
            return True, True
        return True, False
