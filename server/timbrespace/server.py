"""``timbrespace serve``: wires config, models, the audio process, the transport and zeroconf."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import timbrespace
from timbrespace.app import App, ServerInfo
from timbrespace.audio.host import AudioError, AudioProcess, jack_running
from timbrespace.config import Config
from timbrespace.engines.base import Engine, HandlerError
from timbrespace.engines.registry import EngineLoadError, Wiring, prepare_all
from timbrespace.link import commands as C
from timbrespace.protocol.discovery import Advertiser
from timbrespace.protocol.tcp import TcpLimits
from timbrespace.protocol.transport import OscServer
from timbrespace.state import SavedState, load_state, save_state

log = logging.getLogger(__name__)

#: How often the control side checks the audio process (alive, stalled) and reconciles voices.
WATCH_S = 0.05
#: Every this many seconds (and after a stall) the audio side releases voices the control side does
#: not hold: whatever lost a note-off, no note stays stuck for longer.
RECONCILE_S = 1.0
#: A JACK backend that has rendered nothing for this long is checked: is the JACK server still there?
JACK_CHECK_S = 0.25
#: A JACK backend stalled this long while the JACK server runs is restarted (JACK drops a client
#: that misses its deadlines too long).
JACK_STALL_S = 3.0
#: While JACK is away the audio runs on null and JACK is looked for this often, doubling after
#: each failed move back up to JACK_RETRY_MAX_S.
JACK_RETRY_S = 1.0
JACK_RETRY_MAX_S = 30.0
#: A restarted audio process must render within this long.
RESTART_TIMEOUT_S = 30.0
#: More audio restarts than this within RESTART_WINDOW_S: the server exits (status 1) rather than loop.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


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


async def serve(
    cfg: Config, *, record: Path | None = None, announce: Callable[[str], None] | None = None, fresh: bool = False
) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    loop = asyncio.get_running_loop()
    try:
        prepared = prepare_all(cfg, cfg.inference.device)
    except EngineLoadError as e:
        raise StartupError(str(e)) from None
    state = load_state(cfg.state.path, fresh=fresh) if cfg.state.persist else SavedState()
    first = state.active or cfg.engine
    if first not in prepared:
        first = next(iter(prepared))
    audio = AudioProcess(cfg.audio, record, [p.audio() for p in prepared.values()], engine=first)
    try:
        backend = audio.start()
    except AudioError as e:
        raise StartupError(str(e)) from None
    device = next(iter(prepared.values())).device
    engines: dict[str, Engine] = {}
    advertiser: Advertiser | None = None
    osc: OscServer | None = None
    app: App | None = None
    flush_armed = False

    def defer(delay: float) -> None:
        nonlocal flush_armed
        if not flush_armed:
            flush_armed = True
            loop.call_later(max(delay, 0.0), run_flush)

    def run_flush() -> None:
        nonlocal flush_armed
        flush_armed = False
        for e in engines.values():
            e.flush()

    tick_handle: asyncio.TimerHandle | None = None

    def run_ticks(due: float) -> None:
        # Ticks keep their own grid (due + k*period), so the frame rate does not drift with load.
        nonlocal tick_handle
        tick_handle = None
        if app is None:
            return
        e = app.engine
        if e.tick_period is None:
            return
        now = loop.time()
        try:
            e.tick(now)
        except Exception:  # a decode bug must not stop the server; the next tick tries again
            log.exception("timbre engine tick failed")
        due = max(due + e.tick_period, now)
        tick_handle = loop.call_at(due, run_ticks, due)

    def on_select(e: Engine) -> None:
        if e.tick_period is not None and tick_handle is None:
            run_ticks(loop.time())

    try:
        period = audio.block_size / audio.sample_rate
        # Saved at exit once built: a start that failed before leaves the state file as it was.
        engines = {name: p.build(Wiring(audio, audio.sample_rate, period, audio.frames.get(name), defer=defer),
                                 state.engines.get(name))
                   for name, p in prepared.items()}
        info = ServerInfo(backend, audio.sample_rate, audio.block_size, device)
        app = App(list(engines.values()), audio, info, audio.stats)
        app.engine.activate(0.0)
        app.on_select = on_select
        if first != app.engine.name:
            app.select(first, 0.0)
        osc = OscServer(
            app.handle,
            app.on_malformed,
            host=cfg.network.host,
            port=cfg.network.port,
            tcp_framing=cfg.network.tcp_framing,
            max_datagram=cfg.network.max_datagram,
            tcp_limits=TcpLimits(cfg.network.max_connections, cfg.network.max_connections_per_host,
                                 cfg.network.tcp_idle_timeout, cfg.network.tcp_frame_timeout),
            udp_rate=cfg.network.udp_rate_limit,
            udp_burst=cfg.network.udp_burst,
        )
        try:
            await osc.start()
        except OSError as e:
            raise StartupError(
                f"cannot listen on {cfg.network.host}:{cfg.network.port}: {e.strerror or e}"
            ) from None
        server = osc
        app.send = osc.send
        app.is_own = osc.is_own
        if cfg.network.zeroconf:
            osc.own.ports.add(5353)  # mDNS, which the advertiser listens on: never a reply's destination
        osc.polls = app.polls()

        def on_audio() -> None:
            for reply in audio.replies():
                out = app.on_synced(int(reply.args[0])) if reply.args else None
                if out is not None:
                    peer, (address, args) = out
                    server.send(peer, address, args)

        loop.add_reader(audio.fileno(), on_audio)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        status = 0

        pump_handle: asyncio.TimerHandle | None = None
        period = audio.block_size / audio.sample_rate

        def pump() -> None:
            # Releases that found the socket full are retried every block until they are through.
            nonlocal pump_handle
            pump_handle = loop.call_later(period, pump) if audio.pump() else None

        def arm_pump() -> None:
            nonlocal pump_handle
            if pump_handle is None:
                pump_handle = loop.call_later(period, pump)

        audio.outbox.on_pending = arm_pump

        def reconcile() -> None:
            assert app is not None
            for e in app.engines.values():
                audio.send(C.held(e.name, e.held()))

        # JACK may go away under a running server; the audio then runs on the null backend (real-time
        # clock, no output) until the JACK server is back. See docs/architecture.md, "Audio faults".
        on_jack = backend == "jack"
        restarts: deque[float] = deque()

        async def restart_audio(target: Literal["jack", "portaudio", "null"]) -> bool:
            """Replace the audio process with one on ``target``; False when that one could not start."""
            assert app is not None
            rate = audio.sample_rate
            loop.remove_reader(audio.fileno())
            app.audio_changed("restarting")
            audio.engine = app.engine.name
            audio.restart(target)
            deadline = loop.time() + RESTART_TIMEOUT_S
            try:
                while (started := audio.poll_started()) is None:
                    if loop.time() > deadline:
                        raise AudioError(f"the audio process did not start within {RESTART_TIMEOUT_S:.0f} s")
                    await asyncio.sleep(WATCH_S)
                if audio.sample_rate != rate:
                    raise AudioError(f"{started} runs at {audio.sample_rate} Hz and this server at {rate} Hz "
                                     "(restart the server to follow it)")
            except AudioError as e:
                log.error("audio on %s: %s", target, e)
                audio.sample_rate = rate
                if target == "null":
                    raise
                return await restart_audio("null")
            finally:
                loop.add_reader(audio.fileno(), on_audio)
            # The new process holds no voice: the control side forgets the notes it held, so that
            # nothing it later releases or reconciles refers to sound from before the fault.
            for engine_ in app.engines.values():
                with contextlib.suppress(HandlerError):
                    engine_.panic(0.0)
            app.engine.activate(0.0)  # the patch in effect (also in the mailbox, which it reads first)
            app.audio_changed(started)
            reconcile()
            log.warning("audio running again on %s", started)
            return started == target

        async def watch() -> None:
            nonlocal status
            stalled = 0.0
            reconciled = loop.time()
            retry_at, retry_wait = 0.0, JACK_RETRY_S
            while not stop.is_set():
                await asyncio.sleep(WATCH_S)
                stall = audio.stats.stall_s(time.monotonic())
                fault = ""
                if not audio.alive:
                    fault = f"the audio process died (exit code {audio.exitcode})"
                elif audio.backend == "jack" and stall >= JACK_CHECK_S and not jack_running():
                    fault = "the JACK server stopped"
                elif audio.backend == "jack" and stall >= JACK_STALL_S:
                    fault = f"JACK has not run the audio process for {stall:.1f} s"
                now = loop.time()
                if fault:
                    restarts.append(now)
                    while restarts[0] < now - RESTART_WINDOW_S:
                        restarts.popleft()
                    if len(restarts) > MAX_RESTARTS:
                        log.error("%s, the %d. time in %.0f s; shutting down", fault, len(restarts),
                                  RESTART_WINDOW_S)
                        status = 1
                        stop.set()
                        continue
                    target: Literal["jack", "portaudio", "null"] = "null"
                    if audio.backend in ("jack", "portaudio") and (audio.backend != "jack" or jack_running()):
                        target = "jack" if audio.backend == "jack" else "portaudio"
                    log.error("%s; restarting the audio process on %s%s", fault, target,
                              " until the JACK server is back" if on_jack and target != "jack" else "")
                    try:
                        await restart_audio(target)
                    except AudioError:
                        log.error("the audio process cannot be restarted; shutting down")
                        status = 1
                        stop.set()
                        continue
                    stalled, reconciled = 0.0, loop.time()
                    retry_at, retry_wait = loop.time() + JACK_RETRY_S, JACK_RETRY_S
                    continue
                if on_jack and audio.backend != "jack" and now >= retry_at and jack_running():
                    log.warning("the JACK server is back; moving the audio to it")
                    if not await restart_audio("jack"):
                        retry_wait = min(retry_wait * 2.0, JACK_RETRY_MAX_S)
                    retry_at = loop.time() + retry_wait
                    stalled, reconciled = 0.0, loop.time()
                    continue
                if stall and not stalled:
                    log.warning("audio stalled: no block rendered for %.2f s", stall)
                elif stalled and not stall:
                    log.warning("audio resumed after a stall of %.2f s; reconciling voices", stalled)
                    reconcile()
                    reconciled = loop.time()
                stalled = stall
                if not stall and loop.time() - reconciled >= RECONCILE_S:
                    reconcile()
                    reconciled = loop.time()

        ticker = asyncio.create_task(watch())
        host, port = osc.udp_address
        zc = ""
        if cfg.network.zeroconf:
            advertiser = Advertiser(
                cfg.network.instance_name(), port, txt_records(cfg, tuple(app.engines)),
                interfaces=cfg.network.interfaces
            )
            await advertiser.start()
            zc = f", zeroconf {advertiser.name!r}"
        line = (
            f"timbrespace {timbrespace.__version__} ready: udp://{host}:{port} tcp://{osc.tcp_address[0]}:"
            f"{osc.tcp_address[1]} (audio {backend} {audio.sample_rate} Hz/{audio.block_size}, "
            f"engine {app.engine.name}, device {device}{zc})"
        )
        (announce or (lambda s: print(s, flush=True)))(line)
        await stop.wait()
        if tick_handle is not None:
            tick_handle.cancel()
        if pump_handle is not None:
            pump_handle.cancel()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        loop.remove_reader(audio.fileno())
        log.info("shutting down")
        return status
    finally:
        if advertiser is not None:
            await advertiser.stop()
        if osc is not None:
            await osc.stop()
        if cfg.state.persist and engines:
            try:
                snapshots = {name: e.snapshot() for name, e in engines.items()}
                save_state(cfg.state.path, snapshots, app.engine.name if app is not None else first)
            except (OSError, ValueError) as e:
                print(f"timbrespace: could not save state to {cfg.state.path} (the previous file is kept): {e}",
                      file=sys.stderr)
        audio.stop()

