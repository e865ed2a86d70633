"""Where replies go outside a request, and how feedback is packed: redirected reply ports, and
each group of subscribers' messages encoded once into bundles that are never fragmented.

The transport's sends are set by the server (``send_packet``, ``send_packets``); the feedback calls
:meth:`Delivery.feedback` for each group it sends (see :data:`timbrespace.session.feedback.Deliver`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from timbrespace.protocol.codec import OscEncodeError
from timbrespace.protocol.encode import encode_bundle, encode_message
from timbrespace.protocol.peer import Peer, Reply
from timbrespace.session.clients import Client

#: Senders whose replies /reply/port redirects, at most.
MAX_REPLY_PORTS = 1024
#: Bytes of one feedback packet at most: a bundle that fits an Ethernet frame, never fragmented.
FEEDBACK_PACKET_BYTES = 1400
BUNDLE_HEADER = 16  # "#bundle\0" and the time tag
_BUNDLE_HEAD = encode_bundle(None, [])  # the same, for a bundle built from framed messages
#: Encoded feedback messages kept at most within one flush (emptied when full).
ENCODED_CACHE = 4096
#: Sends one flush may hold back at most (one per group and per personal copy).
MAX_JOBS = 4096


class Delivery:
    """Reply ports, the feedback's encoding and its sends."""

    def __init__(self) -> None:
        #: Sends an encoded packet outside any request (the server sets the transport's).
        self.send_packet: Callable[[Peer, bytes], None] | None = None
        #: Sends the same encoded packets to several peers (the server sets the transport's, which
        #: hands UDP sends to a thread); None: ``send_packet`` to each.
        self.send_packets: Callable[[Sequence[Peer], Sequence[bytes]], None] | None = None
        self._reply_ports: dict[tuple[str, int], int] = {}
        #: Feedback messages already encoded in this flush (a message is immutable, its bytes never
        #: change); see :meth:`flushed`.
        self._encoded: dict[int, tuple[Reply, bytes]] = {}
        #: This flush's packets and where they go, sent when it ends (see :meth:`flushed`).
        self._jobs: list[tuple[list[Peer], list[bytes]]] = []

    # -- reply ports ------------------------------------------------------------------------------
    def destination(self, peer: Peer) -> Peer:
        """Where ``peer``'s replies go: its own address, or the port it asked for (/reply/port)."""
        port = self._reply_ports.get((peer.host, peer.port)) if peer.protocol == "udp" else None
        return peer if port is None else Peer("udp", peer.host, port)

    def redirected(self, peer: Peer) -> bool:
        """Whether ``peer``'s replies go elsewhere than where it sends from."""
        return bool(self._reply_ports) and peer.protocol == "udp" and (peer.host, peer.port) in self._reply_ports

    def redirect(self, peer: Peer, port: int) -> None:
        """Send ``peer``'s replies to ``port`` from now on (0: back to where it sends from)."""
        key = (peer.host, peer.port)
        self._reply_ports.pop(key, None)
        if port:
            if len(self._reply_ports) >= MAX_REPLY_PORTS:  # forget the oldest, never grow unbounded
                del self._reply_ports[next(iter(self._reply_ports))]
            self._reply_ports[key] = port

    # -- feedback ---------------------------------------------------------------------------------
    def feedback(self, messages: list[Reply], shared: list[Client],
                 personal: list[tuple[Client, Collection[int]]]) -> None:
        """One group's messages in as few bundles as fit a datagram that is never fragmented,
        encoded once: the same packets to each of ``shared``; to each of ``personal`` the same but
        for the messages it made itself (only the packets holding those are built again). They go
        out when the flush ends (:meth:`flushed`).

        One datagram per flush instead of one per message: a subscriber that reads slowly finds one
        packet per tick in its socket, not dozens, so its receive buffer does not overflow and drop
        the newest values (which are the ones that must arrive).
        """
        if self.send_packet is None and self.send_packets is None:
            return
        framed = [self._framed(m) for m in messages]
        # Packets as ranges of messages: [start, end) each, within FEEDBACK_PACKET_BYTES.
        ranges: list[tuple[int, int]] = []
        start, size = 0, BUNDLE_HEADER
        for i, data in enumerate(framed):
            if i > start and size + len(data) > FEEDBACK_PACKET_BYTES:
                ranges.append((start, i))
                start, size = i, BUNDLE_HEADER
            size += len(data)
        ranges.append((start, len(framed)))
        ranges = [(a, b) for a, b in ranges if any(framed[a:b])]  # not one of only unencodable messages
        packets = [_BUNDLE_HEAD + b"".join(framed[a:b]) for a, b in ranges]
        if shared:
            if self._reply_ports:
                self._send([self.destination(c.peer) for c in shared], packets)
            else:  # nobody redirected its replies: each goes where it sends from
                self._send([c.peer for c in shared], packets)
        for client, skip in personal:
            own: list[bytes] = []
            for (a, b), packet in zip(ranges, packets):
                if any(a <= i < b for i in skip):
                    body = b"".join(framed[i] for i in range(a, b) if i not in skip)
                    if body:
                        own.append(_BUNDLE_HEAD + body)
                else:
                    own.append(packet)
            self._send([self.destination(client.peer)], own)

    def flushed(self) -> None:
        """A flush ended: its packets go out, its encodings are forgotten.

        The packets wait for the end of the flush because handing them over wakes the fan-out
        thread, which then wants the interpreter the flush still holds: handed over group by group,
        the two took turns through the flush. A change goes to every group of one flush and seldom
        again later (only to a subscriber that was not due), so keeping the encodings longer saves
        little, while keeping a few thousand message tuples alive fed the garbage collector: they
        outlived the young generation and made its collections, which land inside flushes, frequent
        and slow.
        """
        self._encoded.clear()
        jobs, self._jobs = self._jobs, []
        for dests, packets in jobs:
            self._send_now(dests, packets)

    def _send(self, dests: list[Peer], packets: list[bytes]) -> None:
        if len(self._jobs) >= MAX_JOBS:  # a flush that was never ended: its oldest packets go now
            self.flushed()
        self._jobs.append((dests, packets))

    def _send_now(self, dests: list[Peer], packets: list[bytes]) -> None:
        if self.send_packets is not None:
            self.send_packets(dests, packets)
        elif self.send_packet is not None:
            for dest in dests:
                for packet in packets:
                    self.send_packet(dest, packet)

    def _framed(self, message: Reply) -> bytes:
        """A message as a bundle element (its size, then it), encoded once per message object.

        One change goes to every subscriber as the same message object; keyed by identity (the
        entry keeps the object, so its id is not reused): equal-looking arguments of other types
        (1 and 1.0) encode differently.
        """
        entry = self._encoded.get(id(message))
        if entry is not None and entry[0] is message:
            return entry[1]
        try:
            data = encode_message(*message)
        except OscEncodeError:  # a value no OSC type holds: the message is left out
            data = b""
        framed = len(data).to_bytes(4, "big") + data if data else b""
        if len(self._encoded) >= ENCODED_CACHE:
            self._encoded.clear()
        self._encoded[id(message)] = (message, framed)
        return framed
