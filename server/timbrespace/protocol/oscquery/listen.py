"""OSCQuery's WebSocket (on the HTTP port): LISTEN/IGNORE per path, OSC both ways.

A WebSocket is a TCP connection, and its client is a session client like a TCP one: its
:class:`Peer` is ``("tcp", host, port, conn_id)`` with a ``conn_id`` from :data:`FIRST_CONN`
up, a range the OSC transport never hands out. So it is proved, and its subscription and notes
last as long as the socket, with no change to the sessions. The server routes feedback and
replies sent outside a request (:meth:`Hub.owns`) here instead of to the transport.

- Text frames are the proposal's commands, ``{"COMMAND": "LISTEN", "DATA": "/latent"}`` and
  ``IGNORE``. The first LISTEN subscribes the connection (``/notify 1`` through the same handler
  as any OSC message); the layer's feedback, coalesced to ``sessions.feedback_rate``, is then
  filtered to the paths listened to and each message sent as one binary OSC frame. The last
  IGNORE unsubscribes. Top-level paths are the layer the connection plays (layer 0 unless it sent
  ``/layer N``); a path under ``/layer/N/`` watches layer N (``/watch N``, its first state and then
  its changes under that prefix), until the last of its paths is ignored. A path with no method is
  ignored.
- Binary frames are OSC packets handled like any other (``/fail`` replies included), their replies
  sent back as binary frames. A bundle's messages run at once: time tags are not waited for here.
  A ``/notify 1`` sent that way subscribes the connection to the whole feedback, as over TCP: every
  message (``/cursor`` and ``/clients`` included, which no path LISTEN takes names) comes as one
  frame, until ``/notify 0`` (the web page at ``/play`` plays this way).

Bounds: a frame of at most ``max_frame`` bytes (a bigger one closes the socket); the paths listened
to, at most the namespace's; frames waiting to be written, at most :data:`MAX_QUEUED` (a client that
reads slower than that is closed: its values would go stale anyway).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import WSMsgType, web

from timbrespace.protocol.codec import Bundle, Message, OscDecodeError, OscEncodeError, decode_packet
from timbrespace.protocol.encode import PackedReply, encode_message
from timbrespace.protocol.peer import Incoming, Peer, Reply, new_incoming

from .namespace import Namespace

__all__ = ["FIRST_CONN", "MAX_QUEUED", "Hub"]

log = logging.getLogger(__name__)

#: The first ``conn_id`` of a WebSocket's peer (the transport's TCP ids count up from 1).
FIRST_CONN = 1 << 48
#: Frames waiting to be written to one WebSocket at most.
MAX_QUEUED = 256
#: Seconds between pings: a client gone without a close is noticed, and its notes released.
HEARTBEAT_S = 20.0


class _Socket:
    """One WebSocket: its peer, the paths it listens to, its frames waiting to be written."""

    def __init__(self, ws: web.WebSocketResponse, peer: Peer) -> None:
        self.ws = ws
        self.peer = peer
        self.listening: set[str] = set()
        #: Subscribed with an OSC ``/notify 1``: every feedback message is sent, not only those listened to.
        self.everything = False
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_QUEUED)
        self._closing: asyncio.Task[bool] | None = None

    def put(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.info("closing the WebSocket of %s:%d: it reads too slowly", self.peer.host, self.peer.port)
            self.close()

    def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.ws.close())

    async def writer(self) -> None:
        try:
            while (frame := await self.queue.get()) is not None:
                await self.ws.send_bytes(frame)
        except ConnectionError:  # closed under us: the reading side ends the connection
            pass


class Hub:
    """The WebSocket connections of the OSCQuery port, between aiohttp and the app's handlers."""

    def __init__(self, namespace: Namespace, handle: Callable[[Incoming], Iterable[Reply]],
                 malformed: Callable[[Peer, str], Iterable[Reply]], disconnected: Callable[[Peer], None],
                 *, max_frame: int = 65536) -> None:
        self.namespace = namespace
        self.handle = handle
        self.malformed = malformed
        self.disconnected = disconnected
        self.max_frame = max_frame
        self._ids = itertools.count(FIRST_CONN)
        self._sockets: dict[int, _Socket] = {}
        #: Text frames that were not a known command, and frames dropped for a closed socket.
        self.bad_commands = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._sockets)

    def owns(self, peer: Peer) -> bool:
        """Whether ``peer`` is one of the WebSockets."""
        return peer.conn_id >= FIRST_CONN and peer.protocol == "tcp"

    # -- sends from outside a request (the app's feedback, /synced) ------------------------------------
    def send_packet(self, peer: Peer, data: bytes) -> None:
        """An encoded packet for ``peer``: the messages it listens to, one frame each."""
        sock = self._sockets.get(peer.conn_id)
        if sock is None:
            self.dropped += 1
            return
        try:
            packet = decode_packet(data)
        except OscDecodeError:  # the server's own encoding: never, but a bug must not end the loop
            log.exception("undecodable packet for a WebSocket")
            return
        for msg in _messages(packet):
            if sock.everything or msg.address in sock.listening:
                sock.put(encode_message(msg.address, msg.args, msg.tags or None))

    def send(self, peer: Peer, address: str, args: tuple[Any, ...]) -> None:
        """A reply for ``peer`` outside its request (``/synced``): sent whatever it listens to."""
        sock = self._sockets.get(peer.conn_id)
        if sock is None:
            self.dropped += 1
            return
        try:
            sock.put(encode_message(address, args))
        except OscEncodeError:
            log.exception("reply %s to a WebSocket cannot be encoded", address)

    async def close_all(self) -> None:
        """Close every WebSocket (the server is stopping): their clients leave as they end."""
        await asyncio.gather(*(sock.ws.close() for sock in list(self._sockets.values())), return_exceptions=True)

    # -- one connection ----------------------------------------------------------------------------------
    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WebSocket until it closes; its client then leaves the session."""
        ws = web.WebSocketResponse(max_msg_size=self.max_frame, heartbeat=HEARTBEAT_S)
        await ws.prepare(request)
        peername = request.transport.get_extra_info("peername") if request.transport is not None else None
        host, port = (str(peername[0]), int(peername[1])) if peername else ("", 0)
        sock = _Socket(ws, Peer("tcp", host, port, next(self._ids)))
        self._sockets[sock.peer.conn_id] = sock
        writer = asyncio.get_running_loop().create_task(sock.writer())
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._command(sock, frame.data)
                elif frame.type == WSMsgType.BINARY:
                    self._osc(sock, frame.data)
                else:  # an error (a frame over max_frame): aiohttp closes the socket
                    break
        finally:
            del self._sockets[sock.peer.conn_id]
            writer.cancel()
            self.disconnected(sock.peer)
        return ws

    def _osc(self, sock: _Socket, data: bytes) -> None:
        arrival = time.monotonic()
        try:
            packet = decode_packet(data)
        except OscDecodeError as e:
            self._reply(sock, self.malformed(sock.peer, str(e)))
            return
        for msg in _messages(packet):
            replies = list(self.handle(new_incoming(msg.address, msg.args, sock.peer, arrival, msg.tags)))
            if msg.address == "/notify" and msg.args and not any(r[0] == "/fail" for r in replies):
                sock.everything = bool(msg.args[0])
            self._reply(sock, replies)

    def _reply(self, sock: _Socket, replies: Iterable[Reply]) -> None:
        for r in replies:
            try:
                sock.put(r.packet if type(r) is PackedReply else encode_message(*r))
            except OscEncodeError:
                log.exception("reply %s to a WebSocket cannot be encoded", r[0])

    def _command(self, sock: _Socket, text: str) -> None:
        try:
            cmd = json.loads(text)
            command, path = cmd["COMMAND"], cmd["DATA"]
        except (ValueError, TypeError, KeyError):
            self.bad_commands += 1
            return
        if command == "LISTEN" and isinstance(path, str):
            node = self.namespace.find(path)
            if node is None or "TYPE" not in node.attributes:
                self.bad_commands += 1
                return
            first = not sock.listening
            if first and not self._notify(sock, 1):
                return
            layer = _layer_of(node.full_path)
            # Another layer's path: that layer is watched (its first state carries the value).
            watch = layer is not None and not any(_layer_of(p) == layer for p in sock.listening)
            if layer is not None and watch and not self._ask(sock, "/watch", (layer, 1)):
                return
            sock.listening.add(node.full_path)
            # The value now: the subscription's (or the watch's) first state carries it otherwise.
            value = None if first or watch else self.namespace.value(node)
            if value is not None:
                sock.put(encode_message(node.full_path, value))
        elif command == "IGNORE" and isinstance(path, str):
            if path in sock.listening:
                sock.listening.discard(path)
                layer = _layer_of(path)
                if layer is not None and not any(_layer_of(p) == layer for p in sock.listening):
                    self._ask(sock, "/watch", (layer, 0))
            if not sock.listening and not sock.everything:  # an OSC /notify 1 lasts until its /notify 0
                self._notify(sock, 0)
        else:
            self.bad_commands += 1

    def _notify(self, sock: _Socket, on: int) -> bool:
        """Subscribe (1) or unsubscribe (0) the connection's client; whether it took."""
        return self._ask(sock, "/notify", (on,))

    def _ask(self, sock: _Socket, address: str, args: tuple[int, ...]) -> bool:
        """Send ``address`` for the connection's client through the handlers; whether it took."""
        replies = list(self.handle(new_incoming(address, args, sock.peer, time.monotonic(), "i" * len(args))))
        failed = [r for r in replies if r[0] == "/fail"]
        self._reply(sock, failed)  # the /done is the handler's business; a /fail says why not
        return not failed


def _layer_of(path: str) -> int | None:
    """N for a path under ``/layer/N/``, else None."""
    if not path.startswith("/layer/"):
        return None
    number, sep, _ = path[len("/layer/"):].partition("/")
    return int(number) if number.isdigit() and sep else None


def _messages(packet: Message | Bundle) -> list[Message]:
    """A packet's messages in order, bundles flattened."""
    if isinstance(packet, Message):
        return [packet]
    out: list[Message] = []
    for element in packet.elements:
        out += _messages(element)
    return out
