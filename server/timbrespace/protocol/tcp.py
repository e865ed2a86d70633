"""OSC over TCP: one asyncio protocol per connection, SLIP (OSC 1.1) or int32 length framing.

A connection deframes packets and hands them to its server's callbacks; replies are framed the
same way as the requests.  A peer that stops reading its replies is paused, then dropped.

Connections cost a file descriptor and up to one unfinished frame of memory each, so
:class:`TcpListener` bounds them (:class:`TcpLimits`): a cap in all and per source host, file
descriptors kept free for the server's own files (:data:`FD_HEADROOM`), an idle timeout and a
timeout for a frame that stays half-sent.  Accept errors (``EMFILE``) pause accepting briefly and
are logged at most once per :data:`LOG_PERIOD`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any, Literal

from timbrespace.ratelog import RateLimitedLog

from .encode import encode_message
from .peer import Peer, TransportStats

log = logging.getLogger(__name__)

SLIP_END, SLIP_ESC = 0xC0, 0xDB
WRITE_LIMIT = 4 << 20  # a TCP peer that leaves this much unread is disconnected
FD_HEADROOM = 64
"""File descriptors kept free for the server's own files: no connection is accepted into them."""
ACCEPT_PAUSE = 0.5
"""Seconds accepting stops after the system refused a descriptor (EMFILE, ENFILE, ENOBUFS)."""
ACCEPT_BATCH = 64
"""Connections accepted per wake-up before the loop serves others."""
TCP_BATCH = 64
"""Frames one connection may have handled per loop turn before the loop serves others."""
LOG_PERIOD = 10.0
"""Seconds between log lines about one kind of connection event; the rest are counted."""
_log_fatal = RateLimitedLog(log, 1, "framing errors", period=LOG_PERIOD)
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
PacketCallback = Callable[[bytes, Peer, float], None]
MalformedCallback = Callable[[Peer, str], None]


@dataclass(frozen=True)
class TcpLimits:
    """Bounds on TCP connections (config ``network.*``, see config.py)."""

    max_connections: int = 128
    per_host: int = 16
    #: Seconds without a byte from the peer before its connection is closed.
    idle_timeout: float = 600.0
    #: Seconds an unfinished frame may wait for its end before the connection is closed.
    frame_timeout: float = 10.0


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
        on_lost: Callable[[TcpConnection], None] | None = None,
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
        self._on_lost = on_lost
        self.peer = Peer("tcp", "", 0, conn_id)
        #: time.monotonic() of the last bytes received, and of the read that began the frame
        #: still unfinished (None: none is)
        self.last_rx = time.monotonic()
        self.partial_since: float | None = None
        self._arrival = self.last_rx  # when the bytes being deframed came in
        self._scan = 0  # SLIP: bytes at the buffer's start already searched for END
        self._batch_paused = False  # reading paused while complete frames wait (see _deframe)
        self._write_paused = False  # reading paused because the peer does not read its replies
        self._batch_handle: asyncio.Handle | None = None

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
        if self._batch_handle is not None:
            self._batch_handle.cancel()  # its frames are not handled once the connection is gone
            self._batch_handle = None
        if self._registry.pop(self._conn_id, None) is not None:
            self._stats.tcp_connections -= 1
        self._transport = None
        if self._on_lost is not None:
            on_lost, self._on_lost = self._on_lost, None
            on_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()  # stop taking requests from a peer that does not read replies

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self._transport.is_closing() and not self._batch_paused:
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
        self._stats.bytes_received += len(data)
        self.last_rx = self._arrival = time.monotonic()
        self._buf += data
        self._deframe()

    def _deframe(self) -> None:
        """Handle up to TCP_BATCH complete frames; with more waiting, pause reading and go on next turn.

        One read can hold thousands of small frames; handling them all in one callback would keep
        every other client (a /status poll on another connection, UDP) waiting until they are done.
        The buffer is cut once per batch: cutting it after each frame costs a copy of the rest.
        """
        self._batch_handle = None
        buf = self._buf
        arrival = self._arrival
        limit = self._max_packet
        pos = frames = 0
        more = False
        if self._slip:
            limit *= 2  # escaping can double a packet
            scan = self._scan
            while True:
                end = buf.find(SLIP_END, max(pos, scan))
                if end < 0:
                    break
                if frames >= TCP_BATCH:
                    more = True
                    break
                frame = bytes(buf[pos:end])
                pos = end + 1
                if frame:
                    frames += 1
                    self._slip_frame(frame, arrival)
                if self._closing:
                    return
        else:
            stats = self._stats
            while len(buf) - pos >= 4:
                size = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
                if size < 0 or size > limit:
                    self._fatal(f"length prefix {size} outside 0..{limit}")
                    return
                if len(buf) - pos < 4 + size:
                    break
                if frames >= TCP_BATCH:
                    more = True
                    break
                frame = bytes(buf[pos + 4 : pos + 4 + size])
                pos += 4 + size
                frames += 1
                stats.packets_received += 1
                self._on_packet(frame, self.peer, arrival)
                if self._closing:
                    return
        if pos:
            del buf[:pos]
        self._scan = 0 if more else len(buf)  # where the next END search starts (SLIP)
        t = self._transport
        if more:
            self.partial_since = None  # what waits is complete frames, not a stalled one
            if t is not None and not self._batch_paused:
                self._batch_paused = True
                t.pause_reading()
            self._batch_handle = asyncio.get_running_loop().call_soon(self._deframe)
            return
        if self._batch_paused:
            self._batch_paused = False
            if t is not None and not self._write_paused and not t.is_closing():
                t.resume_reading()
        if self._slip and len(buf) > limit:
            self._fatal(f"SLIP frame exceeds {limit} bytes without END")
            return
        # The clock runs from the read that began the unfinished frame: a client streaming
        # frames whose reads end mid-frame completes one after another and is never stalled.
        if not buf:
            self.partial_since = None
        elif pos or self.partial_since is None:
            self.partial_since = arrival

    def idle_check(self, now: float, limits: TcpLimits) -> str | None:
        """Close this connection if it was idle, or left a frame unfinished, for too long."""
        t = self._transport
        if t is None or self._closing or t.is_closing():
            return None
        if self.partial_since is not None and now - self.partial_since > limits.frame_timeout:
            self._fatal(f"incomplete frame: {len(self._buf)} bytes and no end for {limits.frame_timeout:g} s")
            return "frame"
        if now - self.last_rx > limits.idle_timeout:
            t.close()
            return "idle"
        return None

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
        _log_fatal.info("closing %s: %s", self.peer, reason)
        t = self._transport
        if t is None:
            return
        if t.can_write_eof():
            t.write_eof()
            self._linger = asyncio.get_running_loop().call_later(2.0, t.close)
        else:
            t.close()


class TcpListener:
    """Accepts connections within :class:`TcpLimits`; closes idle and half-sent ones."""

    def __init__(
        self,
        sock: socket.socket,
        limits: TcpLimits,
        framing: Literal["slip", "length"],
        make: Callable[[Callable[[TcpConnection], None]], TcpConnection],
        registry: dict[int, TcpConnection],
    ) -> None:
        self._sock = sock
        self.limits = limits
        #: Hosts whose connections are taken (None: all); others are closed at once, unanswered.
        self.allow: Container[str] | None = None
        self.not_allowed = 0
        self._make = make  # builds a connection that calls the given function when it is lost
        self._registry = registry
        self._slip = framing == "slip"
        self._loop = asyncio.get_running_loop()
        self._hosts: dict[str, int] = {}  # open (or opening) connections per source host
        self._open = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._resume: asyncio.TimerHandle | None = None
        self._throttles = {k: RateLimitedLog(log, 1, what, period=LOG_PERIOD)
                           for k, what in (("accept", "accept failures"), ("refuse", "refused connections"),
                                           ("idle", "timed-out connections"))}
        #: connections refused (over a cap or the descriptor headroom) and closed by a timeout
        self.refused = self.timed_out = 0
        sock.setblocking(False)
        sock.listen(min(socket.SOMAXCONN, 128))
        self._loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting and close the listening socket (open connections are left to the caller)."""
        for h in (self._sweep, self._resume):
            if h is not None:
                h.cancel()
        self._sweep = self._resume = None
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:  # the fd stays readable: pause, or spin
                    self._loop.remove_reader(self._sock.fileno())
                    self._resume = self._loop.call_later(ACCEPT_PAUSE, self._resume_accepting)
                    self._throttles["accept"].log(
                        logging.WARNING, "TCP accept paused %.1f s: %s", ACCEPT_PAUSE, exc.strerror)
                else:
                    self._throttles["accept"].log(logging.WARNING, "TCP accept failed: %s", exc)
                return
            host = str(addr[0])
            if self.allow is not None and host not in self.allow:
                self.not_allowed += 1
                conn.close()
                continue
            reason = self._refusal(conn, host)
            if reason is not None:
                self._refuse(conn, host, reason)
                continue
            self._open += 1
            self._hosts[host] = self._hosts.get(host, 0) + 1
            task = self._loop.create_task(self._connect(conn, host))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if self._sweep is None:
                self._arm_sweep()

    def _refusal(self, conn: socket.socket, host: str) -> str | None:
        lim = self.limits
        if self._open >= lim.max_connections:
            return f"too many TCP connections ({lim.max_connections} open)"
        if self._hosts.get(host, 0) >= lim.per_host:
            return f"too many TCP connections from {host} ({lim.per_host} open)"
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and conn.fileno() >= soft - FD_HEADROOM:
            return f"file descriptors running out (limit {soft}, {FD_HEADROOM} kept for files)"
        return None

    def _refuse(self, conn: socket.socket, host: str, reason: str) -> None:
        """Tell the client why in one framed /fail (if its socket takes it), then close."""
        self.refused += 1
        self._throttles["refuse"].log(logging.WARNING, "TCP connection from %s refused: %s", host, reason)
        packet = encode_message("/fail", ("", f"connection refused: {reason}"))
        framed = b"\xc0" + packet + b"\xc0" if self._slip else len(packet).to_bytes(4, "big") + packet
        try:
            conn.setblocking(False)
            conn.send(framed)
        except OSError:
            pass
        conn.close()

    async def _connect(self, conn: socket.socket, host: str) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: self._make(self._lost(host)), conn)
        except OSError as exc:  # the peer went away before its transport was made
            conn.close()
            self._release(host)
            log.debug("TCP connection from %s failed at setup: %s", host, exc)

    def _lost(self, host: str) -> Callable[[TcpConnection], None]:
        return lambda _conn: self._release(host)

    def _release(self, host: str) -> None:
        self._open -= 1
        left = self._hosts.get(host, 1) - 1
        if left > 0:
            self._hosts[host] = left
        else:
            self._hosts.pop(host, None)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def _arm_sweep(self) -> None:
        lim = self.limits
        period = max(0.05, min(1.0, lim.frame_timeout / 4, lim.idle_timeout / 4))
        self._sweep = self._loop.call_later(period, self._check)

    def _check(self) -> None:
        """Close connections idle or half-sent for too long (a scan of at most max_connections)."""
        self._sweep = None
        now = time.monotonic()
        for conn in list(self._registry.values()):
            why = conn.idle_check(now, self.limits)
            if why is not None:
                self.timed_out += 1
                self._throttles["idle"].log(logging.INFO, "closing %s: %s timeout", conn.peer, why)
        if self._open:
            self._arm_sweep()
