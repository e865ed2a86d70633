"""Shedding what holds up the UDP socket: the heaviest sources' datagrams, dropped unread.

Every UDP client shares one socket and its kernel receive buffer. A source that sends more work
than the server gets through keeps that buffer full, and the kernel then drops everyone's datagrams
alike: the per-client shares further in (the audio queue, scheduled bundles, replies) cannot help a
datagram that never arrived, and one that did waits behind the whole buffer. So the transport times
what each source's datagrams cost it, and while the buffer holds more than BACKLOG of its size it
drops, unread, the datagrams of any source whose work filled more than SHARE of the recent time.
Such a drop costs a read: the buffer drains, and the other clients' datagrams find room and come
through within a batch or two. A source under its share loses nothing, nor does a busy server whose
buffer is not backing up, nor a short burst the buffer absorbs.

The buffer's fill is read with ``SO_MEMINFO`` (Linux); where the socket cannot tell it, nothing is
shed and the kernel's drops are all there is, as before.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

__all__ = ["BACKLOG", "MAX_SOURCES", "SHARE", "WINDOW", "Backlog", "LoadShare"]

#: Seconds over which a source's share of the server's time is measured (one to two of them).
WINDOW = 0.25
#: A source whose datagrams took more than this fraction of the time is shed while the buffer backs up.
SHARE = 0.5
#: The fraction of the receive buffer's size past which it is backing up.
BACKLOG = 1 / 8
#: Sources timed per window (a few dozen bytes each); past it new sources go untimed until the next.
MAX_SOURCES = 4096

_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # Linux; Python names it on no platform yet
_MEMINFO = struct.Struct("=II")  # SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_RCVBUF: the first two fields


class LoadShare:
    """Each source's handling time over the last one to two windows of ``window`` seconds."""

    def __init__(self, window: float = WINDOW, share: float = SHARE, max_sources: int = MAX_SOURCES) -> None:
        self.window = window
        self.share = share
        self.max_sources = max_sources
        self._start = 0.0
        self._cur: dict[Any, float] = {}
        self._prev: dict[Any, float] = {}
        self._told: dict[Any, float] = {}  # source -> when it was last told it is shed

    def shed(self, source: Any, now: float) -> tuple[bool, bool]:
        """Whether ``source`` is over its share (its datagram to be dropped), and whether it is to be
        told (once a second at most: a reply to every dropped datagram would feed the flood)."""
        if not self.over(source, now):
            return False, False
        told = self._told
        if now - told.get(source, -1e9) < 1.0:
            return True, False
        if len(told) >= self.max_sources:
            told.clear()
        told[source] = now
        return True, True

    def charge(self, source: Any, seconds: float, now: float) -> None:
        """Add ``seconds`` of the server's time, spent on a datagram of ``source`` until ``now``."""
        if now - self._start >= self.window:
            self._roll(now)
        cur = self._cur
        if source in cur:
            cur[source] += seconds
        elif len(cur) < self.max_sources:
            cur[source] = seconds

    def over(self, source: Any, now: float) -> bool:
        """Whether ``source``'s datagrams took more than ``share`` of the time measured."""
        return self.fraction(source, now) > self.share

    def fraction(self, source: Any, now: float) -> float:
        """``source``'s share of the time measured, 0 to 1 (a datagram is charged when it is done,
        so one begun in the window before can take the measure past 1: it is clipped)."""
        if now - self._start >= self.window:
            self._roll(now)
        busy = self._prev.get(source, 0.0) + self._cur.get(source, 0.0)
        return min(busy / (self.window + max(now - self._start, 0.0)), 1.0)

    def _roll(self, now: float) -> None:
        # The window just ended becomes the previous one, unless a whole window passed unmeasured.
        self._prev = self._cur if now - self._start < 2 * self.window else {}
        self._cur = {}
        self._start = now


class Backlog:
    """Whether a datagram socket's receive buffer holds more than ``fraction`` of its size."""

    def __init__(self, sock: socket.socket, fraction: float = BACKLOG) -> None:
        self._sock = sock
        self.limit = 0  # bytes; 0 where the socket cannot tell its fill
        try:
            _, rcvbuf = _MEMINFO.unpack_from(sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 64))
        except (OSError, struct.error):
            return
        self.limit = max(int(rcvbuf * fraction), 1)

    def queued(self) -> int:
        """Bytes waiting in the buffer (the kernel's count, datagrams' overhead included); 0 if unknown."""
        if not self.limit:
            return 0
        try:
            return int(_MEMINFO.unpack_from(self._sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 64))[0])
        except (OSError, struct.error):
            return 0

    def high(self) -> bool:
        """Whether the buffer is backing up (never, where the socket cannot tell)."""
        return bool(self.limit) and self.queued() > self.limit
