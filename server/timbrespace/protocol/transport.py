"""OSC over UDP and TCP on one port, on the asyncio loop; bundles scheduled by time tag.

UDP uses a non-blocking socket watched with ``loop.add_reader``, drained up to
:data:`UDP_BATCH` datagrams per wake-up, with replies sent in groups (see
:meth:`OscServer._udp_readable`): ``create_datagram_endpoint`` reads one datagram per loop
iteration, and a reply per ``sendto`` wakes a waiting client once per reply (the bench has the
figures). Everything sent over UDP passes :mod:`.udp_send`. TCP uses OSC 1.1 SLIP framing
(double END) or the OSC 1.0 int32 big-endian length prefix; replies go back on the same
connection in the same framing (see :mod:`.tcp`).

Bundles run at their time tags (see :mod:`.timed`); waiting ones are bounded per client and in
all (see :mod:`.schedule`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any, Literal

from timbrespace.ratelog import RateLimitedLog

from .codec import Bundle, Message, OscDecodeError, OscEncodeError, decode_packet
from .encode import PackedReply, encode_message
from .peer import Handler, Incoming, MalformedHandler, Peer, Reply, TransportStats, new_incoming
from .replies import (
    FAIL_MIN_BYTES,
    REQUEST_REPLY_BUDGET,
    UDP_REPLY_FACTOR,
    UDP_REPLY_FLOOR,
    OwnAddresses,
    encode_fail,
    packet_budget,
)
from .tcp import TcpConnection, TcpLimits, TcpListener, tcp_socket
from .timed import Timed
from .udp_gate import UdpGate
from .udp_send import UdpSender

__all__ = ["Handler", "Incoming", "MalformedHandler", "OscServer", "Peer", "Reply", "TransportStats"]

log = logging.getLogger(__name__)

UDP_BATCH = 64
"""Datagrams read per wake-up before yielding to the loop (timers, TCP)."""
UDP_BATCH_SECONDS = 0.005
"""Work per wake-up after which the loop gets its turn even if fewer were read: one bundle may carry
thousands of messages, and the timers, the TCP clients and the audio's replies must not wait on 64."""
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
        udp_rate: float = 0.0,
        udp_burst: int = 1000,
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
        self._udp_out: list[tuple[bytes, Any]] | None = None  # replies of the batch being read
        self._conns: dict[int, TcpConnection] = {}
        self._next_conn = 1
        self._timed = Timed(self._deliver, self._malformed, self._scheduled_budget, self.stats,
                            max_scheduled=max_scheduled, max_delay=max_delay)
        #: Polls answered without decoding: exact packet bytes -> a function of (peer, arrival)
        #: returning the encoded reply, or None to take the normal path (see _udp_readable).
        self.polls: dict[bytes, Callable[[Peer, float], bytes | None]] = {}
        self._allow: Container[str] | None = None
        #: Called with a TCP connection's peer once it has closed (its client leaves the session).
        self.on_disconnect: Callable[[Peer], None] | None = None
        #: The server's own listening ports (the OSC port; the owner may add others, e.g. mDNS).
        self.own = OwnAddresses()
        #: Everything sent over UDP goes through it (the guard, grouped sends, the fan-out thread).
        self._out = UdpSender(self.stats, self.own)
        # Bytes of replies the packet being handled may still cause; None outside a packet.
        self._budget: int | None = None
        self._over_noted = False  # this packet's "reply budget spent" /fail was sent
        self._log_io = RateLimitedLog(log, 5, "socket errors")
        self._log_fail = RateLimitedLog(log, 5, "handler failures")
        self._log_malformed = RateLimitedLog(log, 20, "malformed packets")
        #: The drops before decoding: over ``udp_rate`` datagrams a second (bursts of ``udp_burst``;
        #: 0 is no limit), or over a share of the time while the buffer backs up (udp_gate.py).
        self._gate = UdpGate(udp_rate, udp_burst, self.stats, self._udp_send, self._log_io)

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
        self._tcp.allow = self.allow
        udp.setblocking(False)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self._udp = udp
        self._gate.attach(udp)
        self._out.attach(loop, udp)
        self._udp_addr = (str(sockaddr[0]), port)
        self.own.ports.add(port)
        self._timed.start(loop)
        loop.add_reader(udp.fileno(), self._udp_readable)
        rcvbuf = udp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        log.info(
            "OSC on %s:%d: udp (rcvbuf %d), tcp (%s framing)", sockaddr[0], port, rcvbuf, self.tcp_framing
        )

    async def stop(self) -> None:
        """Close both sockets and every TCP connection; drop bundles not yet due."""
        self._timed.stop()
        await self._out.close()  # what waits for the fan-out thread goes out before the socket closes
        if self._udp is not None and self._loop is not None:
            self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._conns.values()):
                conn.close()
            await asyncio.sleep(0)  # their connection_lost runs
            self._tcp = None
        self._conns.clear()

    @property
    def allow(self) -> Container[str] | None:
        """Hosts whose packets are taken (None: all); others are dropped before decoding and counted."""
        return self._allow

    @allow.setter
    def allow(self, hosts: Container[str] | None) -> None:
        self._allow = hosts
        if self._tcp is not None:
            self._tcp.allow = hosts

    # ------------------------------------------------------------------ sending

    def is_own(self, host: str, port: int) -> bool:
        """True when ``(host, port)`` is one of this server's own listening sockets."""
        return self.own.is_own(host, port)

    def send(self, peer: Peer, address: str, args: tuple[object, ...]) -> None:
        """Send one message to ``peer`` (UDP address or open TCP connection); dropped if it is gone.

        Called while a packet is handled (a redirected reply), it spends that packet's budget.
        """
        self._emit(peer, ((address, args),), address)

    def send_packet(self, peer: Peer, data: bytes) -> None:
        """Send an encoded packet to ``peer`` outside any request (feedback); dropped if it is gone."""
        self._send_bytes(peer, data)

    def send_packets(self, peers: Sequence[Peer], packets: Sequence[bytes]) -> None:
        """Send the same encoded packets to each of ``peers`` outside any request (feedback).

        UDP peers are handed to the fan-out thread in one job after the guard every UDP reply
        passes; TCP peers are written here, on the loop (their transports are the loop's).
        """
        addrs: list[tuple[str, int]] = []
        for peer in peers:
            if peer.protocol != "udp":
                for packet in packets:
                    self._send_bytes(peer, packet)
                continue
            addr = (peer.host, peer.port)
            if self._out.may_send(addr):
                addrs.append(addr)
        if addrs:
            self._out.fan_out(packets, addrs)

    def _open_budget(self, protocol: str, size: int) -> None:
        self._budget = packet_budget(protocol, size)
        self._over_noted = False

    def _emit(self, peer: Peer, replies: Iterable[Reply], about: str) -> None:
        """Encode and send one request's replies one by one, within the request's and packet's budgets.

        A reply that cannot be encoded or does not fit costs only itself: it is counted, and
        answered with a /fail (one per packet for the budget); a /fail itself is clipped to fit.
        """
        left = REQUEST_REPLY_BUDGET
        for r in replies:
            try:
                data = r.packet if type(r) is PackedReply else encode_message(*r)
            except OscEncodeError as exc:  # a handler's bug: this reply is lost, not the others
                self.stats.encode_errors += 1
                self.stats.handler_errors += 1
                self._log_fail.error("reply %.40s to %.80s from %s cannot be encoded: %.200s", r[0], about, peer, exc)
                self._report(peer, f"reply not encodable handling {about}: {type(exc).__name__}: {exc}")
                continue
            n = len(data)
            budget = self._budget
            if n > left or (budget is not None and n > budget):
                fit = self._over_budget(r, n, left if budget is None else min(left, budget), about)
                if fit is None:
                    continue
                data, n = fit, len(fit)
            left -= n
            if budget is not None:
                self._budget = budget - n
            self._send_bytes(peer, data)

    def _over_budget(self, reply: Reply, size: int, room: int, about: str) -> bytes | None:
        """What to send instead of a reply of ``size`` bytes when only ``room`` are left."""
        if room >= FAIL_MIN_BYTES and reply[0] == "/fail" and len(reply[1]) == 2:
            return encode_fail(str(reply[1][0]), str(reply[1][1]), room)
        self.stats.replies_over_budget += 1
        if self._over_noted or room < FAIL_MIN_BYTES:
            return None
        self._over_noted = True
        return encode_fail(about, (
            # What happened first: with little room left the end of the reason is clipped.
            f"reply budget spent: {reply[0]} of {size} bytes dropped ({room} bytes left; "
            f"a UDP packet may cause {UDP_REPLY_FACTOR}x its size or {UDP_REPLY_FLOOR} bytes of replies, "
            f"one request {REQUEST_REPLY_BUDGET}); ask for less or use TCP"), room)

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
        out = self._udp_out
        if out is not None:  # inside a receive batch: goes out with its replies
            out.append((data, addr))
            if len(out) >= UDP_FLUSH:  # streamed: a bundle's replies are never all held at once
                self._out.flush(out)
                out.clear()
        else:
            self._out.send_now(data, addr)

    # ------------------------------------------------------------------ receiving

    def _udp_readable(self) -> None:
        """Drain up to UDP_BATCH datagrams or UDP_BATCH_SECONDS of work; the plain-message path is
        inlined for speed. While the socket's buffer backs up, the datagrams of a source that took
        more than its share of the time are dropped unread (see shed.py).

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
        gate = self._gate
        rate = gate.rate
        charge = gate.load.charge
        # Read once a wake-up: the batch is short, and one read costs about a microsecond.
        shedding = gate.backed_up()
        out: list[tuple[bytes, Any]] = []
        self._udp_out = out
        received = nbytes = 0
        began = done = monotonic()
        try:
            for _ in range(UDP_BATCH):
                if done - began > UDP_BATCH_SECONDS:
                    break
                try:
                    data, addr = recvfrom(maxd + 1)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if self._udp is not None:  # not closed by stop() from a handler
                        self._log_io.warning("UDP receive failed: %s", exc)
                    break
                arrival = monotonic()
                received += 1
                nbytes += len(data)
                if rate and gate.rate_limited(addr, arrival):
                    continue
                if shedding and gate.shed(addr, arrival):
                    continue
                try:
                    peer = peers.get(addr)
                    if peer is None:
                        if self.allow is not None and addr[0] not in self.allow:
                            self.stats.not_allowed += 1  # outside sessions.allow: dropped unanswered
                            continue
                        peer = self._udp_peer(addr)
                    # A monitor polling /status thousands of times a second sends the same bytes every
                    # time: such packets skip decoding, validation and dispatch (~5 us of ~25 here).
                    poll = polls.get(data)
                    if poll is not None:
                        try:
                            reply = poll(peer, arrival)
                        except Exception:  # a bug: the normal path below answers /fail and logs it
                            self._log_fail.error("poll handler failed", exc_info=True)
                            reply = None
                        if reply is not None:
                            out.append((reply, addr))
                            if received == 1 or len(out) >= UDP_FLUSH:
                                self._out.flush(out)
                                out.clear()
                            continue
                    self._open_budget("udp", len(data))
                    if len(data) > maxd:
                        self._malformed(peer, f"datagram larger than {maxd} bytes")
                        continue
                    try:
                        msg = decode_packet(data)
                    except OscDecodeError as exc:
                        self._malformed(peer, str(exc))
                        continue
                    if type(msg) is not Message:
                        self._timed.bundle(msg, peer, arrival)  # type: ignore[arg-type]
                        continue
                    inc = _object_new(Incoming)
                    _setattr(
                        inc,
                        "__dict__",
                        {"address": msg[0], "args": msg[1], "peer": peer, "arrival": arrival, "tags": msg[2]},
                    )
                    try:
                        self._emit(peer, handler(inc), msg[0])
                    except Exception as exc:
                        self._handler_failed(msg, peer, exc)
                    if out and (received == 1 or len(out) >= UDP_FLUSH):
                        self._out.flush(out)  # the first reply of a wake-up goes at once (one at a time)
                        out.clear()
                finally:
                    done = monotonic()
                    charge(addr, done - arrival, done)
        finally:
            self._udp_out = None
            self._budget = None
            stats = self.stats
            stats.packets_received += received
            stats.bytes_received += nbytes
            if out:
                self._out.flush(out)

    def _udp_peer(self, addr: Any) -> Peer:
        if len(self._peers) >= _PEER_CACHE:  # forget the oldest source, in O(1)
            del self._peers[next(iter(self._peers))]
        peer = self._peers[addr] = Peer("udp", addr[0], addr[1])
        return peer

    def _packet(self, data: bytes, peer: Peer, arrival: float) -> None:
        """Decode one packet and deliver (or schedule) its messages."""
        if peer.protocol == "tcp" and not self._tcp_open(peer):
            self.stats.dropped_closed += 1
            return
        self._open_budget(peer.protocol, len(data))
        try:
            self._packet_now(data, peer, arrival)
        finally:
            self._budget = None

    def _packet_now(self, data: bytes, peer: Peer, arrival: float) -> None:
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
            self._timed.bundle(packet, peer, arrival)

    def _deliver(self, msg: Message, peer: Peer, arrival: float) -> None:
        """Run the handler for one message and send its replies; never raises.

        A TCP connection's requests are not handled once it has closed (replies could not go back).
        """
        if peer.protocol == "tcp" and not self._tcp_open(peer):
            self.stats.dropped_closed += 1
            return
        try:
            self._emit(peer, self._handler(new_incoming(msg[0], msg[1], peer, arrival, msg[2])), msg[0])
        except Exception as exc:
            self._handler_failed(msg, peer, exc)

    def _tcp_open(self, peer: Peer) -> bool:
        conn = self._conns.get(peer.conn_id)
        return conn is not None and conn.is_open

    def _handler_failed(self, msg: Message, peer: Peer, exc: Exception) -> None:
        self.stats.handler_errors += 1
        self._log_fail.error("handler failed on %.80s from %s", msg.address, peer, exc_info=exc)
        kind = "reply not encodable" if isinstance(exc, OscEncodeError) else "internal error"
        self._report(peer, f"{kind} handling {msg.address}: {type(exc).__name__}: {exc}")

    def _malformed(self, peer: Peer, reason: str) -> None:
        self.stats.malformed += 1
        self._log_malformed.log(logging.DEBUG, "malformed packet from %s: %.200s", peer, reason)
        self._report(peer, reason)

    def _report(self, peer: Peer, reason: str) -> None:
        """Send the replies ``on_malformed`` gives for ``reason``; never raises."""
        try:
            self._emit(peer, self._on_malformed(peer, reason), "")
        except Exception:
            self._log_fail.error("on_malformed failed for %s (%.200s)", peer, reason, exc_info=True)

    def _scheduled_budget(self, protocol: str | None) -> None:
        """A scheduled bundle's messages run: a budget of their own (their packet was answered), or
        none once they have run (None)."""
        if protocol is None:
            self._budget = None
        else:
            self._open_budget(protocol, 0)

    # ------------------------------------------------------------------ TCP

    def _new_connection(self, on_lost: Callable[[TcpConnection], None]) -> TcpConnection:
        conn_id = self._next_conn
        self._next_conn += 1

        def lost(conn: TcpConnection) -> None:
            on_lost(conn)
            if self.on_disconnect is not None and conn.peer is not None:
                self.on_disconnect(conn.peer)

        return TcpConnection(conn_id, self.tcp_framing, self.max_datagram, self.stats, self._conns,
                             self._packet, self._malformed, lost)

