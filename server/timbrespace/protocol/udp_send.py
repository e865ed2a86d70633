"""The UDP socket's sending side: the guard every reply passes, replies sent in groups, a bounded
backlog for what the socket could not take yet, and feedback handed to the fan-out thread.

The transport (:mod:`.transport`) reads and dispatches; everything it sends over UDP goes through
here, so the guard (never to a privileged port, never to the server itself) cannot be bypassed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any

from timbrespace.ratelog import RateLimitedLog

from .fanout import UdpFanout
from .peer import TransportStats
from .replies import FIRST_UNPRIVILEGED_PORT, OwnAddresses

log = logging.getLogger(__name__)

#: Datagrams waiting for the socket at most; past it the oldest is dropped and counted.
MAX_BACKLOG = 4096

Address = tuple[str, int]


class UdpSender:
    """Sends on the server's UDP socket once :meth:`attach` gave it one."""

    def __init__(self, stats: TransportStats, own: OwnAddresses) -> None:
        self.stats = stats
        self.own = own
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog: deque[tuple[bytes, Any]] = deque()
        #: Sends feedback datagrams beside the loop (see fanout.py); made by attach().
        self._fanout: UdpFanout | None = None
        self._log_io = RateLimitedLog(log, 5, "socket errors")
        self._log_refused = RateLimitedLog(log, 5, "refused replies")

    def attach(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Send on ``sock`` (non-blocking), on ``loop``; starts the fan-out thread."""
        self._loop, self._sock = loop, sock
        self._fanout = UdpFanout(sock)

    async def close(self) -> None:
        """Send what waits for the fan-out thread, then stop it (the owner closes the socket)."""
        if self._fanout is not None:
            await asyncio.to_thread(self._fanout.close)
            self._fanout = None
        if self._sock is not None and self._loop is not None:
            self._loop.remove_writer(self._sock.fileno())
        self._sock = None

    def may_send(self, addr: Address) -> bool:
        """The guard every UDP reply passes: never to a privileged port, never to the server itself."""
        if addr[1] >= FIRST_UNPRIVILEGED_PORT and addr[1] not in self.own.ports:
            return True  # the usual case, decided without looking the host up
        why = self.own.refusal(addr[0], addr[1])
        if why is None:
            return True
        self.stats.send_refused += 1
        self._log_refused.warning("not sending a reply to %s:%s: %s", addr[0], addr[1], why)
        return False

    def send_now(self, data: bytes, addr: Address) -> None:
        """Send, or queue behind what the socket could not take yet (bounded)."""
        if not self.may_send(addr):
            return
        sock = self._sock
        if sock is None:
            self.stats.send_dropped += 1
            return
        if not self._backlog:
            try:
                sock.sendto(data, addr)
                self.stats.packets_sent += 1
                return
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._writable)
            except OSError as exc:
                self.stats.send_dropped += 1
                self._log_io.warning("UDP send to %s:%s failed: %s", addr[0], addr[1], exc)
                return
        if len(self._backlog) >= MAX_BACKLOG:
            self._backlog.popleft()
            self.stats.send_dropped += 1
        self._backlog.append((data, addr))

    def flush(self, out: list[tuple[bytes, Any]]) -> None:
        """Send queued datagrams in order, back to back; what the socket refuses waits in the backlog."""
        ports = self.own.ports
        for _, addr in out:
            if addr[1] < FIRST_UNPRIVILEGED_PORT or addr[1] in ports:
                out = [(d, a) for d, a in out if self.may_send(a)]
                break
        sock = self._sock
        if self._backlog or sock is None:
            for data, addr in out:
                self.send_now(data, addr)
            return
        sendto = sock.sendto
        sent = 0
        try:
            for data, addr in out:
                sendto(data, addr)
                sent += 1
        except OSError:
            for data, addr in out[sent:]:
                self.send_now(data, addr)
        self.stats.packets_sent += sent

    def fan_out(self, packets: Sequence[bytes], addrs: Sequence[Address]) -> None:
        """The same packets to each of ``addrs`` (each already passed :meth:`may_send`), sent by the
        fan-out thread; before :meth:`attach` or after :meth:`close`, here and now."""
        if self._fanout is None:
            for addr in addrs:
                for packet in packets:
                    self.send_now(packet, addr)
            return
        self._fanout.send(packets, addrs)
        self.stats.packets_sent += len(addrs) * len(packets)

    def _writable(self) -> None:
        sock = self._sock
        backlog = self._backlog
        while sock is not None and backlog:
            data, addr = backlog[0]
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                return
            except OSError as exc:
                self.stats.send_dropped += 1
                self._log_io.warning("UDP send to %s:%s failed: %s", addr[0], addr[1], exc)
            else:
                self.stats.packets_sent += 1
            backlog.popleft()
        if sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())
