"""OSC over TCP: one asyncio protocol per connection, SLIP (OSC 1.1) or int32 length framing.

A connection deframes packets and hands them to its server's callbacks; replies are framed the
same way as the requests.  A peer that stops reading its replies is paused, then dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

from .peer import Peer, TransportStats

log = logging.getLogger(__name__)

SLIP_END, SLIP_ESC = 0xC0, 0xDB
WRITE_LIMIT = 4 << 20  # a TCP peer that leaves this much unread is disconnected
PacketCallback = Callable[[bytes, Peer, float], None]
MalformedCallback = Callable[[Peer, str], None]


def tcp_socket(family: int, sockaddr: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


class TcpConnection(asyncio.Protocol):
    """One TCP peer: deframes SLIP or length-prefixed packets, frames replies the same way."""

    def __init__(
        self,
        conn_id: int,
        framing: Literal["slip", "length"],
        max_packet: int,
        stats: TransportStats,
        registry: dict[int, TcpConnection],
        on_packet: PacketCallback,
        on_malformed: MalformedCallback,
    ) -> None:
        self._conn_id = conn_id
        self._slip = framing == "slip"
        self._max_packet = max_packet
        self._stats = stats
        self._registry = registry  # open connections by id, where replies find their way back
        self._on_packet = on_packet
        self._on_malformed = on_malformed
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._closing = False  # after a fatal framing error: input is discarded until the close
        self._linger: asyncio.TimerHandle | None = None
        self.peer = Peer("tcp", "", 0, conn_id)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        name = transport.get_extra_info("peername") or ("", 0)
        self.peer = Peer("tcp", str(name[0]), int(name[1]), self._conn_id)
        self._registry[self._conn_id] = self
        self._stats.tcp_connections += 1
        self._stats.tcp_connections_total += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._registry.pop(self._conn_id, None) is not None:
            self._stats.tcp_connections -= 1
        self._transport = None

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()  # stop taking requests from a peer that does not read replies

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    @property
    def is_open(self) -> bool:
        """False once the connection is closing or closed: its queued requests are not handled."""
        t = self._transport
        return t is not None and not t.is_closing() and not self._closing

    def write(self, packet: bytes) -> None:
        """Send one packet framed like the requests."""
        t = self._transport
        if t is None or t.is_closing() or self._closing:
            self._stats.send_dropped += 1
            return
        if t.get_write_buffer_size() > WRITE_LIMIT:
            log.warning("closing %s: %d bytes of replies unread", self.peer, t.get_write_buffer_size())
            t.abort()
            return
        if self._slip:
            if 0xC0 in packet or 0xDB in packet:
                packet = packet.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc")
            t.write(b"\xc0" + packet + b"\xc0")
        else:
            t.write(len(packet).to_bytes(4, "big") + packet)
        self._stats.packets_sent += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        stats = self._stats
        stats.bytes_received += len(data)
        arrival = time.monotonic()
        buf = self._buf
        scan = len(buf)
        buf += data
        limit = self._max_packet
        if self._slip:
            limit *= 2  # escaping can double a packet
            while True:
                end = buf.find(SLIP_END, scan)
                if end < 0:
                    break
                frame = bytes(buf[:end])
                del buf[: end + 1]
                scan = 0
                if frame:
                    self._slip_frame(frame, arrival)
                if self._closing:
                    return
            if len(buf) > limit:
                self._fatal(f"SLIP frame exceeds {limit} bytes without END")
        else:
            while len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big", signed=True)
                if size < 0 or size > limit:
                    self._fatal(f"length prefix {size} outside 0..{limit}")
                    return
                if len(buf) < 4 + size:
                    break
                frame = bytes(buf[4 : 4 + size])
                del buf[: 4 + size]
                stats.packets_received += 1
                self._on_packet(frame, self.peer, arrival)

    def _slip_frame(self, frame: bytes, arrival: float) -> None:
        self._stats.packets_received += 1
        if SLIP_ESC in frame:
            esc = frame.count(b"\xdb")
            if esc != frame.count(b"\xdb\xdc") + frame.count(b"\xdb\xdd"):
                self._on_malformed(self.peer, "bad SLIP escape (ESC not followed by ESC_END or ESC_ESC)")
                return
            frame = frame.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
        if len(frame) > self._max_packet:
            self._on_malformed(self.peer, f"packet of {len(frame)} bytes exceeds {self._max_packet}")
            return
        self._on_packet(frame, self.peer, arrival)

    def _fatal(self, reason: str) -> None:
        """Unrecoverable framing error: report, then close cleanly.

        The /fail reply is followed by a FIN (write_eof); input is read and discarded until the
        peer closes or 2 s pass, so that unread input does not turn the close into a reset
        that could destroy the reply in flight.
        """
        self._buf.clear()
        self._on_malformed(self.peer, reason)
        self._closing = True
        log.info("closing %s: %s", self.peer, reason)
        t = self._transport
        if t is None:
            return
        if t.can_write_eof():
            t.write_eof()
            self._linger = asyncio.get_running_loop().call_later(2.0, t.close)
        else:
            t.close()
