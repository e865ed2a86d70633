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
from typing import Any, Literal

import timbrespace
from timbrespace.app import App, ServerInfo
from timbrespace.audio.host import AudioError, AudioProcess, TimbreLayout, jack_running
from timbrespace.config import Config
from timbrespace.engines.base import Engine, HandlerError
from timbrespace.engines.inference import WorkerInference
from timbrespace.engines.patch import PatchEngine
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.link import commands as C
from timbrespace.link.wavetable import TABLE_SIZE
from timbrespace.models.checkpoint import CheckpointError
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.patch.bank import BankFormatError
from timbrespace.patch.library import PresetLibrary
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


def load_timbre(cfg: Config) -> TimbreSpace | None:
    """The timbre model when enabled and present; None (logged) when it is not there."""
    if not cfg.timbre.enabled:
        return None
    if not cfg.timbre.model.exists():
        log.warning("timbre engine off: no model at %s (train one with `timbrespace train timbre`)",
                    cfg.timbre.model)
        return None
    try:
        return TimbreSpace.load(cfg.timbre.model, device=cfg.inference.device, num_threads=cfg.inference.threads)
    except (CheckpointError, OSError, ValueError) as e:
        raise StartupError(f"timbre model {cfg.timbre.model}: {e}") from None


def timbre_layout(cfg: Config, space: TimbreSpace) -> TimbreLayout:
    """The timbre voices the audio process builds for ``space``."""
    centres = list(space.noise_centres_hz())
    centres[0] = centres[1] / 2.0  # the model's first band sits on 0 Hz; a band-pass cannot
    return TimbreLayout(cfg.timbre.polyphony, TABLE_SIZE, tuple(centres), cfg.timbre.release, cfg.timbre.gain)


async def serve(
    cfg: Config, *, record: Path | None = None, announce: Callable[[str], None] | None = None, fresh: bool = False
) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    loop = asyncio.get_running_loop()
    try:
        library = PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)
        space = PatchSpace.load(cfg.patch.model, device=cfg.inference.device, num_threads=cfg.inference.threads)
    except (BankFormatError, CheckpointError, OSError, ValueError) as e:
        raise StartupError(str(e)) from None
    tspace = load_timbre(cfg)
    state = load_state(cfg.state.path, fresh=fresh) if cfg.state.persist else SavedState()
    saved = state.engines
    first = state.active or cfg.engine
    if first not in ("patch", "timbre") or (first == "timbre" and tspace is None):
        first = "patch"
    layout = timbre_layout(cfg, tspace) if tspace is not None else None
    audio = AudioProcess(cfg.audio, record, timbre=layout, engine=first)
    try:
        backend = audio.start()
    except AudioError as e:
        raise StartupError(str(e)) from None
    advertiser: Advertiser | None = None
    osc: OscServer | None = None
    app: App | None = None
    # The inference worker owns the models' device; the engines and the app write to the synth
    # through its ordered link (see engines/inference.py).
    inference = start_inference(cfg, audio, loop)
    engine = PatchEngine(space, library, inference.link, block_period=audio.block_size / audio.sample_rate,
                         inference=inference)
    timbre: TimbreEngine | None = None
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
        if tspace is not None:
            assert audio.frames is not None
            timbre = TimbreEngine(tspace, inference.link, audio.frames, sample_rate=audio.sample_rate,
                                  corners=timbre_corners(cfg, tspace), map_kind=cfg.timbre.map,
                                  release_s=cfg.timbre.release, inference=inference)
            if "timbre" in saved:
                timbre.restore(saved["timbre"])
        if "patch" in saved:
            engine.restore(saved["patch"])
        elif cfg.patch.initial_preset:
            engine.handlers()["/patch/load"]((cfg.patch.initial_preset,), 0.0)
        else:
            engine.handlers()["/latent"](tuple(cfg.patch.initial_latent), 0.0)
            engine.flush()
        engine.activate(0.0)
        await inference.settled()  # the initial patch is in place before the server says it is ready
        info = ServerInfo(backend, audio.sample_rate, audio.block_size, str(space.device))
        app = App([engine] + ([timbre] if timbre is not None else []), inference.link, info, audio.stats)
        app.on_select = on_select
        if first != "patch":
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
            f"engine {app.engine.name}, device {space.device}{zc})"
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
        inference.stop()  # what it decoded lands first: the state saved is the newest
        st = inference.stats
        log.info("inference: %d batches, %d jobs (%d replaced by newer ones), %.2f s busy, longest %.2f ms",
                 st.batches, st.jobs, st.replaced, st.busy_s, st.max_ms)
        if cfg.state.persist:
            try:
                snapshots: dict[str, Any] = {"patch": engine.snapshot()}
                if timbre is not None:
                    snapshots["timbre"] = timbre.snapshot()
                save_state(cfg.state.path, snapshots, app.engine.name if app is not None else first)
            except (OSError, ValueError) as e:
                print(f"timbrespace: could not save state to {cfg.state.path} (the previous file is kept): {e}",
                      file=sys.stderr)
        audio.stop()


def start_inference(cfg: Config, audio: AudioProcess, loop: asyncio.AbstractEventLoop) -> WorkerInference:
    """The inference worker, started: batches at most two per audio block, torch on ``inference.threads``."""
    worker = WorkerInference(audio, loop, min_interval=audio.block_size / audio.sample_rate / 2.0,
                             threads=cfg.inference.threads)
    worker.start()
    return worker


def timbre_corners(cfg: Config, space: TimbreSpace) -> tuple[str, str, str, str]:
    names = []
    for ref in cfg.timbre.corners:
        try:
            names.append(space.instruments[space.instrument(ref)])
        except ValueError as e:
            raise StartupError(f"config timbre.corners: {e}") from None
    return (names[0], names[1], names[2], names[3])
