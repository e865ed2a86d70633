"""``timbrespace serve``: the engines, the audio process, the transport and zeroconf, put together.

What each part does lives with it: the engines are declared in ``engines/registry.py``, their
timers in ``engine_timers.py``, the audio process's upkeep in ``audio_supervisor.py``; this
module starts them in order, runs until a signal and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import timbrespace
from timbrespace.app import App, ServerInfo, SessionSettings
from timbrespace.audio.host import AudioError, AudioProcess
from timbrespace.audio_supervisor import AudioSupervisor
from timbrespace.collector import freeze_startup
from timbrespace.config import Config
from timbrespace.engine_timers import EngineTimers
from timbrespace.engines.base import Engine
from timbrespace.engines.inference import Inference, WorkerInference
from timbrespace.engines.registry import EngineLoadError, Prepared, Wiring, prepare_all
from timbrespace.input_file import InputFileError
from timbrespace.input_follow import InputFollower, InputTicks, input_plan
from timbrespace.link.input import InputPlan
from timbrespace.link.layers import LayerSound
from timbrespace.protocol.discovery import Advertiser
from timbrespace.protocol.oscquery.listen import Hub
from timbrespace.protocol.oscquery.namespace import Namespace
from timbrespace.protocol.oscquery.service import HostInfo, HttpLimits, OscQueryService
from timbrespace.protocol.peer import Peer
from timbrespace.protocol.tcp import TcpLimits
from timbrespace.protocol.transport import OscServer
from timbrespace.session.collision import Policy
from timbrespace.session.networks import Networks
from timbrespace.session_timers import SessionTimers
from timbrespace.state import SavedState, load_state, save_state
from timbrespace.state_keeper import StateKeeper
from timbrespace.web import STATIC
from timbrespace.web.items import PageItems
from timbrespace.web.url import page_url

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server could not start; the text says what to fix."""


def txt_records(cfg: Config, engines: tuple[str, ...] = ("patch",)) -> dict[str, str]:
    """The TXT keys advertised with the service."""
    return {
        "txtvers": "1",
        "version": "1.1",
        "framing": cfg.network.tcp_framing,
        "api": timbrespace.PROTOCOL_VERSION,
        "engines": ",".join(engines),
    }


def build_layers(prepared: Mapping[str, Prepared], audio: AudioProcess, inference: Inference,
                 state: SavedState) -> list[list[Engine]]:
    """Each layer's engines wired to its voices through ``inference``'s ordered link, in their
    saved state (else the config's)."""
    period = audio.block_size / audio.sample_rate
    return [[p.build(Wiring(inference.link, audio.sample_rate, period, audio.layer_frames[i].get(name),
                            inference=inference, layer=i), state.layer(i).engines.get(name))
             for name, p in prepared.items()]
            for i in range(len(audio.sounds))]


def start_inference(cfg: Config, audio: AudioProcess, loop: asyncio.AbstractEventLoop) -> WorkerInference:
    """The inference worker, started: batches at most two per audio block, torch on ``inference.threads``."""
    worker = WorkerInference(audio, loop, min_interval=audio.block_size / audio.sample_rate / 2.0,
                             threads=cfg.inference.threads)
    worker.start()
    return worker


def osc_server(cfg: Config, app: App) -> OscServer:
    """The transport, as the config's network section says, feeding ``app``."""
    n = cfg.network
    return OscServer(
        app.handle,
        app.on_malformed,
        host=n.host,
        port=n.port,
        tcp_framing=n.tcp_framing,
        max_datagram=n.max_datagram,
        tcp_limits=TcpLimits(n.max_connections, n.max_connections_per_host, n.tcp_idle_timeout, n.tcp_frame_timeout),
        udp_rate=n.udp_rate_limit,
        udp_burst=n.udp_burst,
    )


def oscquery(cfg: Config, app: App, osc_port: int) -> tuple[OscQueryService, Hub]:
    """The OSCQuery HTTP server describing ``app``'s addresses with each layer's live values, and
    its WebSockets, whose clients play through ``app`` like any OSC client."""
    n = cfg.network
    namespace = Namespace(app.engines, len(app.layers), lambda i: app.layers[i].state(),
                          description=f"timbrespace {timbrespace.__version__}: the OSC address space "
                          "(docs/protocol.md); the top level plays layer 0, /layer/N/... layer N")
    hub = Hub(namespace, app.handle, app.on_malformed, app.on_disconnect, max_frame=n.max_datagram)
    service = OscQueryService(namespace, HostInfo(n.instance_name(), osc_port), host=n.host, port=n.http_port,
                              limits=HttpLimits(n.max_connections, n.max_connections_per_host),
                              allow=Networks(cfg.sessions.allow).__contains__, websocket=hub,
                              page=STATIC, items=PageItems(app.engines))
    return service, hub


def route_sends(app: App, osc: OscServer, hub: Hub | None) -> Callable[[Peer, str, tuple[Any, ...]], None]:
    """Send the app's feedback and late replies to the WebSocket or the transport the peer is on;
    returns the send for replies outside a request (the supervisor's /synced)."""
    if hub is None:
        app.send, app.delivery.send_packet, app.delivery.send_packets = osc.send, osc.send_packet, osc.send_packets
        return osc.send

    def send(peer: Peer, address: str, args: tuple[Any, ...]) -> None:
        (hub.send if hub.owns(peer) else osc.send)(peer, address, args)

    def send_packet(peer: Peer, data: bytes) -> None:
        (hub.send_packet if hub.owns(peer) else osc.send_packet)(peer, data)

    def send_packets(peers: Sequence[Peer], packets: Sequence[bytes]) -> None:
        if not len(hub):  # no WebSocket open: every peer is the transport's
            osc.send_packets(peers, packets)
            return
        others = []
        for peer in peers:
            if hub.owns(peer):
                for packet in packets:
                    hub.send_packet(peer, packet)
            else:
                others.append(peer)
        if others:
            osc.send_packets(others, packets)

    app.send, app.delivery.send_packet, app.delivery.send_packets = send, send_packet, send_packets
    return send


async def serve(
    cfg: Config, *, record: Path | None = None, announce: Callable[[str], None] | None = None, fresh: bool = False,
    qr: Callable[[str], None] | None = None,
) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status. ``qr`` is given the /play page's
    URL once the server is ready (when the page is served)."""
    loop = asyncio.get_running_loop()
    try:
        prepared = prepare_all(cfg, cfg.inference.device)
    except EngineLoadError as e:
        raise StartupError(str(e)) from None
    state = load_state(cfg.state.path, fresh=fresh) if cfg.state.persist else SavedState()
    heard = [_heard(state.layer(i).active or cfg.engine, prepared) for i in range(len(cfg.layers))]
    settings = session_settings(cfg, state)
    plan = _input_plan(cfg, prepared)
    audio = AudioProcess(cfg.audio, record, [p.audio() for p in prepared.values()], layers=settings.sounds,
                         heard=heard, live_input=plan)
    try:
        backend = audio.start()
    except AudioError as e:
        raise StartupError(str(e)) from None
    device = next(iter(prepared.values())).device
    timers = EngineTimers(loop)
    # The inference worker owns the models' device; the engines and the app write to the synth
    # through its ordered link (see engines/inference.py).
    inference = start_inference(cfg, audio, loop)
    advertiser: Advertiser | None = None
    osc: OscServer | None = None
    http: OscQueryService | None = None
    app: App | None = None
    keeper: StateKeeper | None = None
    ticks: InputTicks | None = None
    try:
        follower = None
        if audio.input_shared is not None and audio.input_frames is not None:
            try:
                follower = InputFollower.build(cfg, prepared["timbre"], inference, audio.input_shared,
                                               audio.input_frames, audio.sample_rate, plan)
            except InputFileError as e:
                raise StartupError(str(e)) from None
            follower.restore(state.layer(cfg.input.layer).input)
            ticks = InputTicks(loop, follower)
        # Saved at exit once built: a start that failed before leaves the state file as it was.
        app = App(build_layers(prepared, audio, inference, state), inference.link,
                  ServerInfo(backend, audio.sample_rate, audio.block_size, device), audio.stats,
                  settings=settings, heard=heard, live_input=follower)
        for layer in app.layers:
            layer.engine.activate(0.0)
        await inference.settled()  # the initial patches are in place before the server says it is ready
        timers.attach(app)
        if ticks is not None:
            ticks.start()
        osc = osc_server(cfg, app)
        try:
            await osc.start()
        except OSError as e:
            raise StartupError(
                f"cannot listen on {cfg.network.host}:{cfg.network.port}: {e.strerror or e}"
            ) from None
        http, hub = oscquery(cfg, app, osc.udp_address[1]) if cfg.network.oscquery else (None, None)
        send = route_sends(app, osc, hub)
        app.is_own = osc.is_own
        app.router.channel = audio.outbox  # each client's share of the audio command queue
        osc.allow = Networks(cfg.sessions.allow)
        osc.on_disconnect = app.on_disconnect
        sessions = SessionTimers(loop, app)
        sessions.start()
        if cfg.network.zeroconf:
            osc.own.ports.add(5353)  # mDNS, which the advertiser listens on: never a reply's destination
        osc.polls = app.polls()
        if cfg.state.persist:
            keeper = StateKeeper(loop, cfg.state.path, _snapshot(app), cfg.state.save_interval)
            keeper.start()
        stop = asyncio.Event()
        supervisor = AudioSupervisor(loop, audio, app, send, stop)
        supervisor.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        host, port = osc.udp_address
        web = page = ""
        if http is not None:
            try:
                await http.start()
            except OSError as e:
                raise StartupError(f"cannot listen on {cfg.network.host}:{cfg.network.http_port} for OSCQuery "
                                   f"(network.http_port; 0 takes any free port): {e.strerror or e}") from None
            web = f" http://{http.address[0]}:{http.address[1]}/"
            page = page_url(*http.address)
            osc.own.ports.add(http.address[1])  # never a reply's destination, as the OSC port is not
        zc = ""
        if cfg.network.zeroconf:
            advertiser = Advertiser(
                cfg.network.instance_name(), port, txt_records(cfg, tuple(app.engines)),
                interfaces=cfg.network.interfaces, http_port=http.address[1] if http is not None else None
            )
            await advertiser.start()
            zc = f", zeroconf {advertiser.name!r}"
            if http is not None:
                http.info.name = advertiser.name  # after a rename, the name clients browse
        log.debug("startup: %d objects put out of the garbage collector's reach", freeze_startup())
        line = (
            f"timbrespace {timbrespace.__version__} ready: udp://{host}:{port} tcp://{osc.tcp_address[0]}:"
            f"{osc.tcp_address[1]}{web} (audio {backend} {audio.sample_rate} Hz/{audio.block_size}, "
            f"engine {app.engine.name}, device {device}{zc}{', page ' + page if page else ''})"
        )
        (announce or (lambda s: print(s, flush=True)))(line)
        if qr is not None and page:
            qr(page)
        await stop.wait()
        timers.close()
        if ticks is not None:
            ticks.close()
        sessions.close()
        await supervisor.close()
        log.info("shutting down")
        return supervisor.status
    finally:
        if ticks is not None:
            ticks.close()
        if advertiser is not None:
            await advertiser.stop()
        if http is not None:
            await http.stop()
        if osc is not None:
            await osc.stop()
        if keeper is not None:
            await keeper.close()  # its write in flight lands before the final one below
        inference.stop()  # what it decoded lands first: the state saved is the newest
        st = inference.stats
        log.info("inference: %d batches, %d jobs (%d replaced by newer ones), %.2f s busy, longest %.2f ms",
                 st.batches, st.jobs, st.replaced, st.busy_s, st.max_ms)
        if cfg.state.persist and app is not None:
            _save(cfg, app)
        audio.stop()


def _input_plan(cfg: Config, prepared: Mapping[str, Prepared]) -> InputPlan | None:
    """The live input the config names (``input.file``), read and checked; StartupError naming what is wrong."""
    if not cfg.input.file and not cfg.input.device:
        return None
    what = f"input {cfg.input.file}" if cfg.input.file else "the device input"
    if "timbre" not in prepared:
        raise StartupError(f"{what}: the live input needs the timbre engine, which does not run "
                           "(timbre.enabled, timbre.model; the log above says why)")
    try:
        return input_plan(cfg, prepared["timbre"], cfg.input.file or None, cfg.input.loop)
    except InputFileError as e:
        raise StartupError(str(e)) from None


def session_settings(cfg: Config, state: SavedState | None = None) -> SessionSettings:
    """The session policy from config ``sessions``; each layer's place in the mix and collision
    policy from config ``layers``, where ``state`` saved none set live."""
    s = cfg.sessions
    admin = Networks(s.admin)
    saved = [(state or SavedState()).layer(i) for i in range(len(cfg.layers))]
    return SessionSettings(max_clients=s.max_clients, client_timeout=s.client_timeout,
                           feedback_rate=s.feedback_rate, rate_limit=s.rate_limit, rate_burst=s.rate_burst,
                           is_admin=admin.__contains__, cursor_budget=s.cursor_budget,
                           collisions=tuple((cast(Policy, k.collision or la.collision),
                                             la.hold if k.hold is None else k.hold)
                                            for la, k in zip(cfg.layers, saved)),
                           sounds=tuple(LayerSound(la.gain if k.gain is None else k.gain,
                                                   la.pan if k.pan is None else k.pan)
                                        for la, k in zip(cfg.layers, saved)))


def _heard(name: str, prepared: Mapping[str, Prepared]) -> str:
    """``name`` when this server runs it, else the first engine it runs."""
    return name if name in prepared else next(iter(prepared))


def _snapshot(app: App) -> Callable[[], list[dict[str, Any]]]:
    """What the state file holds, taken now: each layer's engines' snapshots and the engine heard, and
    the live input's settings on its layer."""

    def take() -> list[dict[str, Any]]:
        layers = [layer.snapshot() for layer in app.layers]
        if app.live_input is not None:
            layers[app.live_input.layer]["input"] = app.live_input.snapshot()
        return layers

    return take


def _save(cfg: Config, app: App) -> None:
    """Every layer's state; a failure is reported, the previous file kept."""
    try:
        save_state(cfg.state.path, _snapshot(app)())
    except (OSError, ValueError) as e:
        print(f"timbrespace: could not save state to {cfg.state.path} (the previous file is kept): {e}",
              file=sys.stderr)
