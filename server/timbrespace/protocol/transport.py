"""OSC over UDP and TCP on one port, on the asyncio loop; bundles scheduled by time tag.

UDP uses a non-blocking socket watched with ``loop.add_reader``, drained up to
:data:`UDP_BATCH` datagrams per wake-up, with replies sent in groups (see
:meth:`OscServer._udp_readable`).  ``create_datagram_endpoint`` reads one
datagram per loop iteration: a bare echo on it did ~23k round trips/s here (2
cores, 256 in flight from another process).  This server, with a /status
handler answering 24 arguments: ~37k with one sendto per reply, 45-48k with
grouped replies (server CPU ~21 us per round trip).  TCP uses OSC 1.1 SLIP framing
(double END) or the OSC 1.0 int32 big-endian length prefix; replies go back on
the same connection in the same framing.

Time: an OSC time tag is absolute NTP wall-clock time (``time.time()`` plus the
NTP epoch offset).  "Now" is the wall clock when the bundle is processed.  Tags
are mapped onto the loop's monotonic clock (``loop.time()``, the same clock as
``time.monotonic()``) as ``due = tag - offset`` with ``offset = time.time() -
loop.time()``; the offset is re-read for every bundle but only updated when it
moved by more than 1 ms (a stepped wall clock), so equal tags get equal due
times and keep their arrival order, and a bundle already scheduled is not moved
by a later clock step.  Immediate (1) or past tags run at once, in the network
callback; future ones run from ``loop.call_at`` (the loop never sleeps for
them).  A nested bundle never runs before its parent (its effective time is the
later of the two).  ``Incoming.arrival`` is always ``time.monotonic()`` at the
packet's arrival, scheduled or not.  Waiting bundles are bounded in count and bytes, per client
and in all, and due ones run in slices (see :mod:`.schedule`); a timed bundle that falls due
while others due before it still wait queues behind them, so equal tags keep arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from .codec import Bundle, Message, OscDecodeError, OscEncodeError, decode_packet
from .encode import PackedReply, encode_message
from .peer import Handler, Incoming, MalformedHandler, Peer, Reply, TransportStats, new_incoming
from .schedule import Schedule
from .tcp import TcpConnection, TcpLimits, TcpListener, tcp_socket

__all__ = ["Handler", "Incoming", "MalformedHandler", "OscServer", "Peer", "Reply", "TransportStats"]

log = logging.getLogger(__name__)

UDP_BATCH = 64
"""Datagrams read per wake-up before yielding to the loop (timers, TCP)."""
UDP_FLUSH = 16
"""Replies held back while draining a batch before they are sent (see ``_udp_readable``)."""
_PEER_CACHE = 4096
"""UDP source addresses whose Peer is reused (a few hundred bytes each)."""
_object_new = object.__new__
_setattr = object.__setattr__  # Incoming is frozen: built without its __init__ on the hot path


class OscServer:
    """UDP + TCP OSC server on one port number; see the module doc for framing and timing."""

    def __init__(
        self,
        handler: Handler,
        on_malformed: MalformedHandler,
        *,
        host: str = "0.0.0.0",
        port: int = 57130,
        tcp_framing: Literal["slip", "length"] = "slip",
        max_datagram: int = 65536,
        rcvbuf: int = 4 << 20,
        max_scheduled: int = 10000,
        max_delay: float = 3600.0,
        tcp_limits: TcpLimits | None = None,
    ) -> None:
        if tcp_framing not in ("slip", "length"):
            raise ValueError(f"tcp_framing must be 'slip' or 'length', not {tcp_framing!r}")
        self._handler = handler
        self._on_malformed = on_malformed
        self._host = host
        self._port = port
        self.tcp_framing = tcp_framing
        self.max_datagram = max_datagram
        self.max_scheduled = max_scheduled
        self.max_delay = max_delay
        self._rcvbuf = rcvbuf
        self.tcp_limits = tcp_limits or TcpLimits()
        self.stats = TransportStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: socket.socket | None = None
        self._tcp: TcpListener | None = None
        self._udp_addr: tuple[str, int] = (host, 0)
        self._peers: dict[Any, Peer] = {}
        self._udp_backlog: deque[tuple[bytes, tuple[str, int]]] = deque()
        self._udp_out: list[tuple[bytes, Any]] | None = None  # replies of the batch being read
        self._conns: dict[int, TcpConnection] = {}
        self._next_conn = 1
        self._schedule = Schedule(max_scheduled)
        self._soon: asyncio.Handle | None = None  # the next slice of due bundles
        self._offset = 0.0  # time.time() - loop.time(), updated only when it moves by > 1 ms
        self._timer: asyncio.TimerHandle | None = None
        #: Polls answered without decoding: exact packet bytes -> a function of (peer, arrival)
        #: returning the encoded reply, or None to take the normal path (see _udp_readable).
        self.polls: dict[bytes, Callable[[Peer, float], bytes | None]] = {}

    # ------------------------------------------------------------------ lifecycle

    @property
    def udp_address(self) -> tuple[str, int]:
        """(host, port) the UDP socket is bound to; the port is resolved after :meth:`start`."""
        return self._udp_addr

    @property
    def tcp_address(self) -> tuple[str, int]:
        """(host, port) of the TCP listener: the same port number as UDP."""
        return self._udp_addr

    async def start(self) -> None:
        """Bind UDP and TCP on the same port (an ephemeral one when ``port`` is 0)."""
        self._loop = loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_DGRAM)
        family, sockaddr = infos[0][0], infos[0][4]
        for attempt in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind(sockaddr)
                port = udp.getsockname()[1]
                tcp = tcp_socket(family, (sockaddr[0], port, *sockaddr[2:]))
            except OSError:
                udp.close()
                if self._port != 0 or attempt == 19:
                    raise
                continue
            break
        self._tcp = TcpListener(tcp, self.tcp_limits, self.tcp_framing, self._new_connection, self._conns)
        udp.setblocking(False)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self._udp = udp
        self._udp_addr = (str(sockaddr[0]), port)
        loop.add_reader(udp.fileno(), self._udp_readable)
        rcvbuf = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        log.info(
            "OSC on %s:%d: udp (rcvbuf %d), tcp (%s framing)", sockaddr[0], port, rcvbuf, self.tcp_framing
        )

    async def stop(self) -> None:
        """Close both sockets and every TCP connection; drop bundles not yet due."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._schedule.clear()
        if self._udp is not None and self._loop is not None:
            self._loop.remove_reader(self._udp.fileno())
            self._loop.remove_writer(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._conns.values()):
                conn.close()
            await asyncio.sleep(0)  # their connection_lost runs
            self._tcp = None
        self._conns.clear()

    # ------------------------------------------------------------------ sending

    def send(self, peer: Peer, address: str, args: tuple[object, ...]) -> None:
        """Send one message to ``peer`` (UDP address or open TCP connection); dropped if it is gone."""
        self._send_bytes(peer, encode_message(address, args))

    def _send_bytes(self, peer: Peer, data: bytes) -> None:
        if peer.protocol == "udp":
            self._udp_send(data, (peer.host, peer.port))
            return
        conn = self._conns.get(peer.conn_id)
        if conn is None:
            self.stats.send_dropped += 1
            log.debug("dropping reply to closed connection %s", peer)
        else:
            conn.write(data)

    def _udp_send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._udp_out is not None:  # inside a receive batch: goes out with its replies
            self._udp_out.append((data, addr))
        else:
            self._udp_send_now(data, addr)

    def _udp_send_now(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send, or queue behind what the socket could not take yet (bounded)."""
        sock = self._udp
        if sock is None:
            self.stats.send_dropped += 1
            return
        if not self._udp_backlog:
            try:
                sock.sendto(data, addr)
                self.stats.packets_sent += 1
                return
            except BlockingIOError:
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._udp_writable)
            except OSError as exc:
                self.stats.send_dropped += 1
                log.warning("UDP send to %s:%s failed: %s", addr[0], addr[1], exc)
                return
        if len(self._udp_backlog) >= 4096:
            self._udp_backlog.popleft()
            self.stats.send_dropped += 1
        self._udp_backlog.append((data, addr))

    def _udp_writable(self) -> None:
        sock = self._udp
        backlog = self._udp_backlog
        while sock is not None and backlog:
            data, addr = backlog[0]
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                return
            except OSError as exc:
                self.stats.send_dropped += 1
                log.warning("UDP send to %s:%s failed: %s", addr[0], addr[1], exc)
            else:
                self.stats.packets_sent += 1
            backlog.popleft()
        if sock is not None and self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    # ------------------------------------------------------------------ receiving

    def _udp_readable(self) -> None:
        """Drain up to UDP_BATCH datagrams; the plain-message path is inlined for speed.

        The replies to the first datagram go out at once; under load the following ones are sent
        UDP_FLUSH at a time, back to back: a client that sleeps in recv is then woken once per
        group instead of once per reply, which halves the kernel time of a round trip here.
        """
        sock = self._udp
        if sock is None:
            return
        recvfrom = sock.recvfrom
        maxd = self.max_datagram
        peers = self._peers
        polls = self.polls
        handler = self._handler
        monotonic = time.monotonic
        out: list[tuple[bytes, Any]] = []
        self._udp_out = out
        received = nbytes = 0
        try:
            for _ in range(UDP_BATCH):
                try:
                    data, addr = recvfrom(maxd + 1)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if self._udp is not None:  # not closed by stop() from a handler
                        log.warning("UDP receive failed: %s", exc)
                    break
                arrival = monotonic()
                received += 1
                nbytes += len(data)
                peer = peers.get(addr) or self._udp_peer(addr)
                # A monitor polling /status thousands of times a second sends the same bytes every
                # time: such packets skip decoding, validation and dispatch (~5 us of ~25 here).
                poll = polls.get(data)
                if poll is not None:
                    try:
                        reply = poll(peer, arrival)
                    except Exception:  # a bug: the normal path below answers /fail and logs it
                        log.exception("poll handler failed")
                        reply = None
                    if reply is not None:
                        out.append((reply, addr))
                        if received == 1 or len(out) >= UDP_FLUSH:
                            self._udp_flush(out)
                            out.clear()
                        continue
                if len(data) > maxd:
                    self._malformed(peer, f"datagram larger than {maxd} bytes")
                    continue
                try:
                    msg = decode_packet(data)
                except OscDecodeError as exc:
                    self._malformed(peer, str(exc))
                    continue
                if type(msg) is not Message:
                    self._bundle(msg, peer, arrival)  # type: ignore[arg-type]
                    continue
                inc = _object_new(Incoming)
                _setattr(
                    inc,
                    "__dict__",
                    {"address": msg[0], "args": msg[1], "peer": peer, "arrival": arrival, "tags": msg[2]},
                )
                try:
                    for r in handler(inc):
                        out.append((r.packet if type(r) is PackedReply else encode_message(*r), addr))
                except Exception as exc:
                    self._handler_failed(msg, peer, exc)
                if out and (received == 1 or len(out) >= UDP_FLUSH):
                    self._udp_flush(out)  # the first reply of a wake-up goes at once (one at a time)
                    out.clear()
        finally:
            self._udp_out = None
            stats = self.stats
            stats.packets_received += received
            stats.bytes_received += nbytes
            if out:
                self._udp_flush(out)

    def _udp_flush(self, out: list[tuple[bytes, Any]]) -> None:
        """Send queued datagrams in order; what the socket refuses waits in the backlog."""
        sock = self._udp
        if self._udp_backlog or sock is None:
            for data, addr in out:
                self._udp_send_now(data, addr)
            return
        sendto = sock.sendto
        sent = 0
        try:
            for data, addr in out:
                sendto(data, addr)
                sent += 1
        except OSError:
            for data, addr in out[sent:]:
                self._udp_send_now(data, addr)
        self.stats.packets_sent += sent

    def _udp_peer(self, addr: Any) -> Peer:
        if len(self._peers) >= _PEER_CACHE:  # forget the oldest source, in O(1)
            del self._peers[next(iter(self._peers))]
        peer = self._peers[addr] = Peer("udp", addr[0], addr[1])
        return peer

    def _packet(self, data: bytes, peer: Peer, arrival: float) -> None:
        """Decode one packet and deliver (or schedule) its messages."""
        poll = self.polls.get(data)
        if poll is not None:
            reply = poll(peer, arrival)
            if reply is not None:
                self._send_bytes(peer, reply)
                return
        try:
            packet = decode_packet(data)
        except OscDecodeError as exc:
            self._malformed(peer, str(exc))
            return
        if type(packet) is Message:
            self._deliver(packet, peer, arrival)
        else:
            assert isinstance(packet, Bundle)
            self._bundle(packet, peer, arrival)

    def _deliver(self, msg: Message, peer: Peer, arrival: float) -> None:
        """Run the handler for one message and send its replies; never raises."""
        try:
            replies = self._handler(new_incoming(msg[0], msg[1], peer, arrival, msg[2]))
            for r in replies:
                self._send_bytes(peer, r.packet if type(r) is PackedReply else encode_message(*r))
        except Exception as exc:
            self._handler_failed(msg, peer, exc)

    def _handler_failed(self, msg: Message, peer: Peer, exc: Exception) -> None:
        self.stats.handler_errors += 1
        log.error("handler failed on %s from %s", msg.address, peer, exc_info=exc)
        kind = "reply not encodable" if isinstance(exc, OscEncodeError) else "internal error"
        self._report(peer, f"{kind} handling {msg.address}: {type(exc).__name__}: {exc}")

    def _malformed(self, peer: Peer, reason: str) -> None:
        self.stats.malformed += 1
        log.debug("malformed packet from %s: %s", peer, reason)
        self._report(peer, reason)

    def _report(self, peer: Peer, reason: str) -> None:
        """Send the replies ``on_malformed`` gives for ``reason``; never raises."""
        try:
            for address, args in self._on_malformed(peer, reason):
                self._send_bytes(peer, encode_message(address, args))
        except Exception:
            log.exception("on_malformed failed for %s (%s)", peer, reason)

    # ------------------------------------------------------------------ bundles

    def _bundle(self, bundle: Bundle, peer: Peer, arrival: float) -> None:
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
                self._malformed(peer, f"bundle time tag {ahead:.1f} s ahead exceeds {self.max_delay} s")
            elif (refused := schedule.add(due, msgs, peer, arrival)) is not None:
                self._malformed(peer, refused)
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
        for msg, peer, arrival in self._schedule.take(self._loop.time() + 0.0005):
            self._deliver(msg, peer, arrival)
        self._arm()

    # ------------------------------------------------------------------ TCP

    def _new_connection(self, on_lost: Callable[[TcpConnection], None]) -> TcpConnection:
        conn_id = self._next_conn
        self._next_conn += 1
        return TcpConnection(conn_id, self.tcp_framing, self.max_datagram, self.stats, self._conns,
                             self._packet, self._malformed, on_lost)


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
