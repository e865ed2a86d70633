"""The control side composed: layers of engines, the router, sessions, feedback and status.

:class:`App` keeps the layers (:mod:`timbrespace.layer`: each a whole instrument, its engine
heard and its handler table), gives the router each layer's table, and serves the addresses that
are not an engine's: queries, notes (with their owners), layers (``/layer``) and sessions
(``/hello``, ``/bye``, ``/clients``). Fingers (``/touch``) are :mod:`timbrespace.touches`'s and
feedback subscriptions (``/notify``, ``/watch``) :mod:`timbrespace.session.subscriptions`'s. The
router (:mod:`timbrespace.router`) does the dispatching; the sessions (:mod:`timbrespace.session`)
know who is playing and what each one owns.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import timbrespace
from timbrespace.collector import pauses
from timbrespace.engines.base import Engine, Handler, HandlerError, Reply, SynthLink
from timbrespace.input_follow import InputFollower, input_handlers
from timbrespace.layer import NOT_RUNNING, Layer
from timbrespace.link import commands as C
from timbrespace.link.layers import LayerSound
from timbrespace.link.stats import AudioStats
from timbrespace.protocol import addresses
from timbrespace.protocol.addresses import LATENCY_REPLY
from timbrespace.protocol.declaration import Value
from timbrespace.protocol.encode import PackedReply, encode_message
from timbrespace.protocol.peer import Incoming, Peer
from timbrespace.protocol.replies import FIRST_UNPRIVILEGED_PORT
from timbrespace.router import Router
from timbrespace.session.clients import Client, NoteKey, Sessions
from timbrespace.session.collision import Collision, PointHeld, Policy
from timbrespace.session.context import Context
from timbrespace.session.delivery import Delivery
from timbrespace.session.feedback import Feedback, FeedbackKey
from timbrespace.session.subscriptions import Subscriptions
from timbrespace.status import Counters, ServerInfo, StatusReport
from timbrespace.touches import Touches

__all__ = ["App", "ServerInfo", "SessionSettings"]

#: Bytes of one /clients.reply at most: any UDP request's reply budget; more over TCP.
CLIENTS_PAGE_BYTES = 256
CLIENTS_PAGE_BYTES_PROVED = 8192


@dataclass(frozen=True)
class SessionSettings:
    """The session policy (config ``sessions``)."""

    max_clients: int = 64
    client_timeout: float = 60.0
    feedback_rate: float = 30.0
    rate_limit: float = 0.0
    rate_burst: int = 200
    is_admin: Callable[[str], bool] = lambda host: host in ("127.0.0.1", "::1")
    #: Per layer (by index): who moves its map point and how long a touch lasts; layers past the
    #: end of the list take ("last", 1.0).
    collisions: tuple[tuple[Policy, float], ...] = ()
    cursor_budget: float = 300.0
    #: Per layer (by index): its gain and pan in the mix; layers past the end take the default.
    sounds: tuple[LayerSound, ...] = ()


def _layered(engines: Engine | Sequence[Engine] | Sequence[Sequence[Engine]]) -> list[list[Engine]]:
    """Each layer's engines, from one engine, one layer's engines, or every layer's."""
    if isinstance(engines, Engine):
        return [[engines]]
    items = list(engines)
    if all(isinstance(x, Engine) for x in items):
        return [cast("list[Engine]", items)]
    return [list(cast("Sequence[Engine]", x)) for x in items]


class App:
    """Layers of engines, sessions and the router, composed; the transport calls :meth:`handle`."""

    def __init__(
        self,
        engines: Engine | Sequence[Engine] | Sequence[Sequence[Engine]],
        link: SynthLink,
        info: ServerInfo,
        stats: AudioStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        settings: SessionSettings | None = None,
        heard: Sequence[str] = (),
        live_input: InputFollower | None = None,
    ) -> None:
        """``engines``: one layer's engines (or one engine), or a sequence of layers' engines;
        ``heard``: the engine heard on each layer (default: each layer's first); ``live_input``:
        the input's follower when the server plays one (``serve --input``)."""
        s = settings or SessionSettings()
        self.layers = [
            Layer(i, layer_engines, link, Collision(*(s.collisions[i] if i < len(s.collisions) else ("last", 1.0))),
                  heard[i] if i < len(heard) else None, s.sounds[i] if i < len(s.sounds) else None)
            for i, layer_engines in enumerate(_layered(engines))
        ]
        #: Called with the layer whose engine was newly selected (the server restarts its tick timer).
        self.on_select: Callable[[Layer], None] | None = None
        self.link = link
        self.info = info
        self.stats = stats
        self.clock = clock
        self.counters = Counters()
        self.sessions = Sessions(max_clients=s.max_clients, client_timeout=s.client_timeout, is_admin=s.is_admin)
        self.sessions.on_leave = self._left
        self.sessions.on_join = self._joined
        #: Where replies go outside a request, and the feedback's packets (the server sets its sends).
        self.delivery = Delivery()
        self.feedback = Feedback(rate=s.feedback_rate, cursor_budget=s.cursor_budget, deliver=self.delivery.feedback,
                                 flushed=self.delivery.flushed)
        self.feedback.state_of = self._layer_state
        for layer in self.layers:
            for e in layer.engines.values():
                e.on_change = self._touch(layer.index)
        self.status_report = StatusReport(info, self.counters, stats, self.sessions.count)
        #: The garbage collector's pauses in this process (/status/runtime).
        self.pauses = pauses()
        self.router = Router(self.sessions, self.feedback, self.counters, rate_limit=s.rate_limit,
                             burst=s.rate_burst, explain=self._other_engine, clock=clock)
        self._owners: dict[NoteKey, Client] = {}
        self.touches = Touches(self.layers, self.sessions, self.feedback, clock)
        self.subscriptions = Subscriptions(self.layers, self.sessions, self.feedback, self.touches)
        self._sync_ids = itertools.count(1)
        self._syncs: dict[int, tuple[Peer, int]] = {}
        #: Sends a reply elsewhere than back to the sender (the server sets it to the transport's).
        self.send: Callable[[Peer, str, tuple[Any, ...]], None] | None = None
        #: Whether (host, port) is one of the server's own sockets (the server sets the transport's).
        self.is_own: Callable[[str, int], bool] = lambda host, port: False
        self._own: dict[str, Handler] = {
            "/status": self._status,
            "/version": self._version,
            "/sync": self._sync,
            "/reply/port": self._reply_port,
            "/engine": self._engine,
            "/note": self._note,
            "/pitch": self._pitch,
            "/panic": self._panic,
            "/hello": self._hello,
            "/bye": self._bye,
            "/clients": self._clients,
            "/layer": self._layer,
            "/status/runtime": self._runtime_status,
            "/status/latency": self._latency_status,
            **self.touches.handlers(),
            **self.subscriptions.handlers(),
        }
        #: The live input (``serve --input``), its layer's (see input_handlers). Its addresses are the
        #: timbre engine's: a server without that model leaves them to the router's /fail naming it.
        self.live_input = live_input
        self._input_handlers = input_handlers(live_input, len(self.layers), "timbre" in self.engines)
        if live_input is not None:
            self.status_report.input = live_input.status
        self._route()
        # An engine this server does not run (no timbre model) leaves its own addresses unserved:
        # they are answered with /fail naming the engine (see Router.dispatch).
        missing = [a.path for a in addresses.ADDRESSES if a.path not in self.layers[0].table
                   and a.engine in (None, *self.engines)]
        if missing:
            raise RuntimeError(f"addresses declared but not handled: {missing}")

    @property
    def engine(self) -> Engine:
        """Layer 0's engine heard."""
        return self.layers[0].engine

    @property
    def engines(self) -> dict[str, Engine]:
        """Layer 0's engines, by name (every layer runs the same ones)."""
        return self.layers[0].engines

    def all_engines(self) -> list[Engine]:
        """Every layer's engines."""
        return [e for layer in self.layers for e in layer.engines.values()]

    def _touch(self, layer: int) -> Callable[[], None]:
        return lambda: self.feedback.touch(layer, self.clock())

    def _route(self) -> None:
        """Each layer's handler table, given to the router (see Layer.route)."""
        tables = [layer.route({**self._own, **self._input_handlers[layer.index]}, self._cursor)
                  for layer in self.layers]
        missing = {a.path: NOT_RUNNING.get(str(a.engine), "not configured") for a in addresses.ADDRESSES
                   if a.path not in tables[0]}
        self.router.set_tables(tables, missing)
        self.status_report.engine_changed(self.engine.name)

    def select(self, name: str, arrival: float, layer: int = 0) -> None:
        """Make engine ``name`` the one heard on ``layer``: the other's notes are released."""
        lay = self.layers[layer]
        old = lay.select(name, arrival)
        if old is None:
            return
        self._disown(layer, old.name)
        self._route()
        if self.on_select is not None:
            self.on_select(lay)

    def audio_changed(self, backend: str) -> None:
        """The audio process was restarted on ``backend`` (what /status reports as ``audio``).

        The new process holds no voice, so nobody owns a note any more.
        """
        self.info.audio = backend
        for layer in self.layers:
            for name in layer.engines:
                self._disown(layer.index, name)
        self._route()

    # -- entry points for the transport and the server ------------------------------------------------
    def handle(self, msg: Incoming) -> list[Reply]:
        """Handle one message; replies go back to its sender (or where /reply/port said)."""
        replies = self.router.dispatch(msg)
        p = msg.peer
        if replies and self.send is not None and self.delivery.redirected(p):
            dest = self.delivery.destination(p)
            for address, args in replies:
                self.send(dest, address, args)
            return []
        return replies

    def on_malformed(self, peer: Peer, reason: str) -> list[Reply]:
        """A packet that could not be decoded."""
        self.counters.received += 1
        self.counters.malformed += 1
        return self.router.fail("", f"malformed packet: {reason}", peer)

    def on_disconnect(self, peer: Peer) -> None:
        """A TCP connection closed: its client leaves the session."""
        self.sessions.disconnected(peer)

    def on_synced(self, internal_id: int) -> tuple[Peer, Reply] | None:
        """The audio side applied a /sync; returns whom to answer and with what."""
        entry = self._syncs.pop(internal_id, None)
        if entry is None:
            return None
        peer, client_id = entry
        return self.delivery.destination(peer), ("/synced", (client_id,))

    def housekeeping(self, now: float) -> None:
        """Periodic: silent members leave, expired subscriptions end, due feedback goes out."""
        self.sessions.housekeeping(now)
        self.feedback.flush(now)

    def flush(self) -> None:
        """Deferred engine work now (the offline renderer calls this before every block)."""
        for layer in self.layers:
            layer.engine.flush()

    def clients(self) -> int:
        """Members plus passers-by heard recently (what /status reports)."""
        return self.sessions.count(self.clock())

    def status(self) -> dict[str, Any]:
        """What /status reports, as a dict (keys in reply order)."""
        return self.status_report.as_dict(self.clock())

    def polls(self) -> dict[bytes, Callable[[Peer, float], bytes | None]]:
        """Exact packets the transport may answer without decoding them (see OscServer.polls)."""
        return {encode_message("/status", ()): self._poll_status}

    def _poll_status(self, peer: Peer, arrival: float) -> bytes | None:
        """/status with no arguments: what ``handle`` would do for it, minus decoding and dispatch."""
        if self.delivery.redirected(peer):
            return None  # redirected replies take the normal path
        if self.router.rate_limit:
            return None  # the rate limit is the router's
        self.counters.received += 1
        self.sessions.heard(peer, arrival)
        return self.status_report.encode(arrival)

    # -- the server's handlers ------------------------------------------------------------------------
    def _other_engine(self, path: str, args: tuple[Value, ...], layer: int) -> HandlerError | None:
        """A clearer reason when a name the heard engine refused is one the other engine knows."""
        return self.layers[layer].explain(path, args)

    def _status(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        t = self.status_report.template
        values = self.status_report.values(self.clock())
        return [PackedReply(t.address, t.args(*values), t.encode(*values))]

    def _version(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        return [("/version.reply", ("timbrespace", timbrespace.__version__, timbrespace.PROTOCOL_VERSION))]

    def _sync(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        internal = next(self._sync_ids)
        self.flush()  # a deferred map move was sent before the /sync: it must land first
        self._syncs[internal] = (ctx.client.peer, int(args[0]))
        if not self.link.send(C.with_id(C.Kind.SYNC, internal, ctx.arrival)):
            del self._syncs[internal]
            raise HandlerError("/sync: the audio command queue is full")
        return []

    def _reply_port(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        port = int(args[0])
        peer = ctx.client.peer
        if peer.protocol != "udp":
            raise HandlerError("/reply/port: replies on TCP go back on the connection; this is for UDP")
        if port and self.is_own(peer.host, port):
            raise HandlerError(f"/reply/port: port {port} is the server's own; expected 0 (the sending port) "
                               f"or another port in {FIRST_UNPRIVILEGED_PORT}..65535")
        self.delivery.redirect(peer, port)
        return [("/reply/port.reply", (port or peer.port,))]

    def _engine(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.select(str(args[0]), ctx.arrival, ctx.layer)
        return []

    def _layer(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        index = int(args[0])
        if index >= len(self.layers):
            raise HandlerError(f"/layer: {index} is out of range 0..{len(self.layers) - 1} (this server's layers)")
        c = ctx.client
        if index == c.layer:
            return [("/layer.reply", (index,))]
        self.sessions.join(c)  # its choice of layer is something to keep: refused when the session is full
        c.layer = index
        if self.feedback.subscribed(c):  # it follows its new layer: that layer's state first
            self.feedback.subscribe(c, ctx.arrival, self.subscriptions.snapshot_for(c).items())
        if len(self.feedback):
            self.feedback.publish_all(("/clients", c.id), ("/clients", ("joined", c.id, c.label, c.layer)),
                                      ctx.arrival)
        return [("/layer.reply", (index,))]

    # -- notes and their owners -------------------------------------------------------------------------
    def _note(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        pitch, velocity = int(args[0]), int(args[1])
        engine = self.layers[ctx.layer].engine
        key = (ctx.layer, engine.name, pitch)
        c = ctx.client
        if velocity > 0:
            self.sessions.join(c)  # an owner has something to lose: refused when the session is full
        engine.flush()
        engine.note(pitch, velocity, ctx.arrival)
        # A note-off from anyone releases the key (a shared keyboard); its owner no longer owns it.
        owner = self._owners.pop(key, None)
        if owner is not None:
            owner.notes.discard(key)
        if velocity > 0:
            self._owners[key] = c
            c.notes.add(key)
        elif owner is not None:
            self.sessions.settle(owner)
        return []

    def _pitch(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.layers[ctx.layer].engine.pitch(float(args[0]), ctx.arrival)
        return []

    def _panic(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        if args[0] == "all":
            for layer in self.layers:
                layer.engine.panic(ctx.arrival)
                for name in layer.engines:
                    self._disown(layer.index, name)
        else:
            self._release(ctx.client, ctx.arrival, cut=True)
            self.sessions.settle(ctx.client)
        return []

    def _release(self, c: Client, arrival: float, cut: bool = False) -> None:
        """Release every note and finger ``c`` owns (never refused); ``cut`` silences its keys at once."""
        mine: dict[tuple[int, str], list[int]] = {}
        for key in sorted(c.notes):
            layer, name, pitch = key
            if self._owners.get(key) is c:
                del self._owners[key]
                mine.setdefault((layer, name), []).append(pitch)
        c.notes.clear()
        self.touches.release(c, arrival)
        for (layer, name), pitches in mine.items():
            engine = self.layers[layer].engines[name]
            if cut:
                engine.cut(pitches, arrival)
            else:
                for pitch in pitches:
                    engine.note(pitch, 0, arrival)

    def _disown(self, layer: int, engine: str) -> None:
        """Nobody owns ``engine``'s notes on ``layer`` any more (they were released as a whole)."""
        self.touches.disown(layer, engine)
        for key in [k for k in self._owners if k[:2] == (layer, engine)]:
            owner = self._owners.pop(key)
            owner.notes.discard(key)
            self.sessions.settle(owner)

    def _cursor(self, layer: Layer, handler: Handler) -> Handler:
        """/latent moves the sender's own point (the others see it as /cursor), then the layer's as
        ``sessions.collision`` says (see session/collision.py)."""

        def latent(args: tuple[Value, ...], ctx: Context) -> list[Reply]:
            c = ctx.client
            c.point = (float(args[0]), float(args[1]))
            if len(self.feedback):  # shown even when the move is refused: each one's point is its own
                self.feedback.publish(ctx.layer, ("/cursor", c.id), ("/cursor", (c.id, c.label, *c.point)),
                                      ctx.arrival, source=c)
            try:
                points = layer.collision.move(c, c.point, ctx.arrival)
            except PointHeld as e:
                raise HandlerError(f"/latent: {e}") from None
            if layer.collision.policy != "blend":
                return handler(args, ctx)
            replies = layer.engine.blend(points, ctx)
            if len(self.feedback):  # the mover hears the blended point too: it is not the one it sent
                sounding = next(m for m in layer.engine.state_messages() if m[0] == "/latent")
                self.feedback.publish(ctx.layer, ("/latent",), sounding, ctx.arrival, source=c, echo=True)
            return replies

        return latent

    # -- sessions ---------------------------------------------------------------------------------------
    def _hello(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        before = (ctx.client.member, ctx.client.id, ctx.client.label)
        c = self.sessions.hello(ctx.client, str(args[0]), ctx.arrival)
        if before[0] and before[1:] != (c.id, c.label):  # a rename (a join is announced by _joined)
            self._joined(c)
        return [("/hello.reply", (c.id, c.name))]

    def _bye(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        c = ctx.client
        self.sessions.leave(c, "said /bye")
        return [("/done", ("/bye", c.id))]

    def _clients(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        members = list(self.sessions.members())
        start = int(args[0])
        # A UDP reply stays within any request's budget, /hello or not; TCP proved its address.
        limit = CLIENTS_PAGE_BYTES_PROVED if ctx.client.peer.protocol == "tcp" else CLIENTS_PAGE_BYTES
        out: list[Value] = [len(members), start]
        size = 40  # the address, the tags so far and the two ints, with room to spare
        for c in members[start:]:
            more = 4 + (len(c.label.encode()) // 4 + 1) * 4 + 4 + 3  # id, name, layer, their tags
            if size + more > limit:
                break
            out += [c.id, c.label, c.layer]
            size += more
        return [("/clients.reply", tuple(out))]

    def _runtime_status(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        return [("/status/runtime.reply", self.pauses.report())]

    def _latency_status(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        if self.stats is None:
            return [("/status/latency.reply", (0,))]
        count, newest = self.stats.newest_latencies(LATENCY_REPLY)
        return [("/status/latency.reply", (count % 2**31, *(float(v) * 1000.0 for v in newest)))]

    def _joined(self, c: Client) -> None:
        if len(self.feedback):
            self.feedback.publish_all(("/clients", c.id), ("/clients", ("joined", c.id, c.label, c.layer)),
                                      self.clock())

    def _left(self, c: Client, why: str) -> None:
        self._release(c, self.clock())
        for layer in self.layers:
            layer.collision.forget(c)
        self.feedback.unsubscribe(c)
        self.feedback.forget(c)
        if len(self.feedback):
            self.feedback.publish_all(("/clients", c.id), ("/clients", ("left", c.id, c.label, c.layer)),
                                      self.clock())

    def _layer_state(self, layer: int) -> dict[FeedbackKey, Reply]:
        """What layer ``layer`` sounds, keyed (see Layer.state), the live input's settings on its layer."""
        if not 0 <= layer < len(self.layers):
            return {}
        state = self.layers[layer].state()
        if self.live_input is not None and layer == self.live_input.layer:
            state.update({(a,): (a, args) for a, args in self.live_input.state_messages()})
        return state
