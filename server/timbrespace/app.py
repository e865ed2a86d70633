"""The server's handlers: typed arguments in, replies out.

:class:`App` owns the addresses that do not shape the sound (status, version, sync, notes) and
dispatches the rest to the active engine. Every message that cannot be carried out is answered
with ``/fail <address> <reason>``, logged and counted; nothing escapes to the transport.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import timbrespace
from timbrespace.clients import ClientRegistry
from timbrespace.engines.base import Engine, Handler, HandlerError, Reply, SynthLink
from timbrespace.engines.registry import SPECS
from timbrespace.link import commands as C
from timbrespace.link.stats import LAT_COUNT, LATE, VOICES, AudioStats
from timbrespace.protocol import addresses
from timbrespace.protocol.addresses import InvalidMessage, Value
from timbrespace.protocol.encode import MessageTemplate, PackedReply, encode_message
from timbrespace.protocol.replies import FIRST_UNPRIVILEGED_PORT, clip_fail
from timbrespace.protocol.transport import Incoming, Peer
from timbrespace.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

#: Rejections logged per second at most; the rest are counted in one line.
LOG_REJECTS = 20
#: Internal errors (with their traceback) logged per second at most.
LOG_INTERNAL = 5
#: Senders whose replies /reply/port redirects, at most.
MAX_REPLY_PORTS = 1024
#: Why an optional engine may be missing, for the /fail that names it.
_NOT_RUNNING = {s.name: s.missing for s in SPECS if s.missing}


@dataclass
class ServerInfo:
    """Facts /status reports that do not change while serving."""

    audio: str = "offline"
    sample_rate: int = 48000
    block_size: int = 256
    device: str = "cpu"


@dataclass
class Counters:
    """Message counters reported by /status."""

    received: int = 0
    rejected: int = 0
    malformed: int = 0
    #: Replies (/fail, /synced, *.reply) received: never answered, or two servers answer each other forever.
    ignored: int = 0


class App:
    """Dispatches validated messages to handlers and builds replies."""

    def __init__(
        self,
        engines: Engine | Sequence[Engine],
        link: SynthLink,
        info: ServerInfo,
        stats: AudioStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engines = {e.name: e for e in ([engines] if isinstance(engines, Engine) else engines)}
        self.engine = next(iter(self.engines.values()))  # the one heard; see select()
        #: Called with the newly selected engine (the server restarts its tick timer).
        self.on_select: Callable[[Engine], None] | None = None
        self.link = link
        self.info = info
        self.stats = stats
        self.clock = clock
        self.counters = Counters()
        self._peers = ClientRegistry()
        self._sync_ids = itertools.count(1)
        self._syncs: dict[int, tuple[Peer, int]] = {}
        self._reply_ports: dict[tuple[str, int], int] = {}
        #: Sends a reply elsewhere than back to the sender (the server sets it to the transport's).
        self.send: Callable[[Peer, str, tuple[Any, ...]], None] | None = None
        #: Whether (host, port) is one of the server's own sockets (the server sets the transport's).
        self.is_own: Callable[[str, int], bool] = lambda host, port: False
        # A flood of bad packets must not become a flood of log lines (and of I/O in the process
        # that serves everyone).
        self._log_rejects = RateLimitedLog(log, LOG_REJECTS, "rejected messages", clock)
        self._log_internal = RateLimitedLog(log, LOG_INTERNAL, "internal errors", clock)
        self._own: dict[str, Handler] = {
            "/status": self._status,
            "/version": self._version,
            "/engine": self._engine,
            "/note": self._note,
            "/pitch": self._pitch,
            "/panic": self._panic,
        }
        self._route()
        # An engine this server does not run (no timbre model) leaves its own addresses unserved:
        # they are answered with /fail naming the engine (see _handle).
        missing = [a.path for a in addresses.ADDRESSES if a.path not in self._handlers
                   and a.path not in ("/sync", "/reply/port") and a.engine in (None, *self.engines)]
        if missing:
            raise RuntimeError(f"addresses declared but not handled: {missing}")

    def _route(self) -> None:
        """Address -> handler: the heard engine's where it has one, else the engine that has one.

        Addresses only one engine serves (/patch/*, /corners) always reach it, heard or not,
        so a patch can be prepared while the other engine plays.
        """
        table: dict[str, Handler] = {}
        for e in self.engines.values():
            e.heard = e is self.engine
            if e is not self.engine:
                table.update(e.handlers())
        table.update(self.engine.handlers())
        table.update(self._own)
        self._handlers = table
        # /status is what monitors poll hardest (the bench: tens of thousands a second), so its
        # reply is a template: the fixed facts are encoded once, the live numbers per request.
        i = self.info
        self._status_reply = MessageTemplate("/status.reply", (
            "clients", int, "voices", int, "engine", self.engine.name, "audio", i.audio,
            "sample_rate", i.sample_rate, "block_size", i.block_size, "device", i.device,
            "received", int, "rejected", int, "late_blocks", int,
            "latency_p50_ms", float, "latency_p99_ms", float, "audio_stall_s", float,
        ))

    def select(self, name: str, arrival: float) -> None:
        """Make engine ``name`` the one heard: the other's notes are released."""
        engine = self.engines.get(name)
        if engine is None:
            have = ", ".join(self.engines)
            raise HandlerError(f"/engine: the {name!r} engine is not running on this server (running: {have})"
                               + (f"; {_NOT_RUNNING[name]}" if name in _NOT_RUNNING else ""))
        if engine is self.engine:
            return
        if not self.link.send(C.engine(name, arrival)):
            raise HandlerError("/engine: the audio command queue is full; message dropped")
        self.engine.flush()
        self.engine.deactivate(arrival)
        self.engine = engine
        engine.activate(arrival)
        self._route()
        if self.on_select is not None:
            self.on_select(engine)

    def audio_changed(self, backend: str) -> None:
        """The audio process was restarted on ``backend`` (what /status reports as ``audio``)."""
        self.info.audio = backend
        self._route()

    # -- entry points for the transport ---------------------------------------------------------
    def handle(self, msg: Incoming) -> list[Reply]:
        """Handle one message; replies go back to its sender (or where /reply/port said)."""
        replies = self._handle(msg)
        p = msg.peer
        if replies and self._reply_ports and self.send is not None and p.protocol == "udp":
            port = self._reply_ports.get((p.host, p.port))
            if port is not None:
                dest = Peer("udp", p.host, port)
                for address, args in replies:
                    self.send(dest, address, args)
                return []
        return replies

    def _handle(self, msg: Incoming) -> list[Reply]:
        self.counters.received += 1
        p = msg.peer
        self._peers.heard(p, msg.arrival)
        if msg.address in addresses.REPLY_ADDRESSES:
            self.counters.ignored += 1
            self._log_rejects.info("ignored %.80s from %s:%s: the server does not answer replies",
                                   msg.address, p.host, p.port)
            return []
        try:
            decl = addresses.lookup(msg.address)
            args = decl.parse(msg.args)
            if decl.path == "/sync":
                return self._sync(args, msg.peer, msg.arrival)
            if decl.path == "/reply/port":
                return self._reply_port(args, msg.arrival, msg.peer)
            handler = self._handlers.get(decl.path)
            if handler is None:
                raise HandlerError(f"{decl.path}: served by the {decl.engine} engine, which is not running on "
                                   f"this server ({_NOT_RUNNING.get(str(decl.engine), 'not configured')})")
            try:
                return handler(args, msg.arrival)
            except HandlerError as e:
                raise self._other_engine(decl.path, args) or e from None
        except (InvalidMessage, HandlerError) as e:
            return self._fail(msg.address, str(e), msg.peer)
        except Exception as e:  # a bug must cost one message, never the server
            self._log_internal.error("internal error handling %.80s from %s", msg.address, msg.peer, exc_info=e)
            return self._fail(msg.address, f"internal error: {type(e).__name__}: {e}", msg.peer)

    def _other_engine(self, path: str, args: tuple[Value, ...]) -> HandlerError | None:
        """A clearer reason when a name the heard engine refused is one the other engine knows.

        A client written for the patch engine sends preset names; if the server was left on the
        timbre engine, "unknown instrument" would send its user looking in the wrong place.
        """
        decl = addresses.BY_PATH[path]
        if decl.engine is not None or not decl.args or decl.args[0].kind != "ref" or not isinstance(args[0], str):
            return None
        for e in self.engines.values():
            if e is not self.engine and e.knows(args[0]):
                return HandlerError(f"{path}: the {self.engine.name} engine is heard; {addresses.show(args[0])} "
                                    f"names a {e.item}: send /engine {e.name} first")
        return None

    def on_malformed(self, peer: Peer, reason: str) -> list[Reply]:
        """A packet that could not be decoded."""
        self.counters.received += 1
        self.counters.malformed += 1
        return self._fail("", f"malformed packet: {reason}", peer)

    def on_synced(self, internal_id: int) -> tuple[Peer, Reply] | None:
        """The audio side applied a /sync; returns whom to answer and with what."""
        entry = self._syncs.pop(internal_id, None)
        if entry is None:
            return None
        peer, client_id = entry
        port = self._reply_ports.get((peer.host, peer.port)) if peer.protocol == "udp" else None
        if port is not None:
            peer = Peer("udp", peer.host, port)
        return peer, ("/synced", (client_id,))

    def flush(self) -> None:
        """Deferred engine work now (the offline renderer calls this before every block)."""
        self.engine.flush()

    # -- handlers ---------------------------------------------------------------------------------
    def _fail(self, address: str, reason: str, peer: Peer) -> list[Reply]:
        self.counters.rejected += 1
        self._log_rejects.info("rejected %.80s from %s:%s: %.300s", address or "(packet)", peer.host, peer.port,
                               reason)
        # Clipped: a 65,000-character address must still get its /fail, in one datagram.
        return [("/fail", clip_fail(address, reason))]

    def _sync(self, args: tuple[Value, ...], peer: Peer, arrival: float) -> list[Reply]:
        internal = next(self._sync_ids)
        self.engine.flush()  # a deferred map move was sent before the /sync: it must land first
        self._syncs[internal] = (peer, int(args[0]))
        if not self.link.send(C.with_id(C.Kind.SYNC, internal, arrival)):
            del self._syncs[internal]
            raise HandlerError("/sync: the audio command queue is full")
        return []

    def _reply_port(self, args: tuple[Value, ...], arrival: float, peer: Peer) -> list[Reply]:
        port = int(args[0])
        if peer.protocol != "udp":
            raise HandlerError("/reply/port: replies on TCP go back on the connection; this is for UDP")
        if port and self.is_own(peer.host, port):
            raise HandlerError(f"/reply/port: port {port} is the server's own; expected 0 (the sending port) "
                               f"or another port in {FIRST_UNPRIVILEGED_PORT}..65535")
        key = (peer.host, peer.port)
        self._reply_ports.pop(key, None)
        if port:
            if len(self._reply_ports) >= MAX_REPLY_PORTS:  # forget the oldest, never grow unbounded
                del self._reply_ports[next(iter(self._reply_ports))]
            self._reply_ports[key] = port
        return [("/reply/port.reply", (port or peer.port,))]

    def _engine(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        self.select(str(args[0]), arrival)
        return []

    def _note(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        self.engine.flush()
        self.engine.note(int(args[0]), int(args[1]), arrival)
        return []

    def _pitch(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        self.engine.pitch(float(args[0]), arrival)
        return []

    def _panic(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        self.engine.panic(arrival)
        return []

    def clients(self) -> int:
        """Clients heard from within ``clients.CLIENT_TIMEOUT``."""
        return self._peers.count(self.clock())

    def status(self) -> dict[str, Any]:
        """What /status reports, as a dict (keys in reply order)."""
        args = self._status_reply.args(*self._status_values(self.clock()))
        return {str(k): v for k, v in zip(args[::2], args[1::2])}

    def _status_values(self, now: float) -> tuple[int, int, int, int, int, float, float, float]:
        clients = self._peers.count(now)
        c = self.counters
        stats = self.stats
        if stats is None:
            return clients, 0, c.received, c.rejected, 0, 0.0, 0.0, 0.0
        v = stats.values
        p50, p99 = stats.percentiles(v[LAT_COUNT])
        return clients, int(v[VOICES]), c.received, c.rejected, int(v[LATE]), p50, p99, stats.stall_s(now)

    def polls(self) -> dict[bytes, Callable[[Peer, float], bytes | None]]:
        """Exact packets the transport may answer without decoding them (see OscServer.polls)."""
        return {encode_message("/status", ()): self._poll_status}

    def _poll_status(self, peer: Peer, arrival: float) -> bytes | None:
        """/status with no arguments: what ``handle`` would do for it, minus decoding and dispatch."""
        if self._reply_ports and peer.protocol == "udp" and (peer.host, peer.port) in self._reply_ports:
            return None  # redirected replies take the normal path
        self.counters.received += 1
        self._peers.heard(peer, arrival)
        return self._status_reply.encode(*self._status_values(arrival))

    def _status(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        t = self._status_reply
        values = self._status_values(self.clock())
        return [PackedReply(t.address, t.args(*values), t.encode(*values))]

    def _version(self, args: tuple[Value, ...], arrival: float) -> list[Reply]:
        return [("/version.reply", ("timbrespace", timbrespace.__version__, timbrespace.PROTOCOL_VERSION))]

