"""``timbrespace serve``: wires config, models, the audio process, the transport and zeroconf."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import timbrespace
from timbrespace.app import App, ServerInfo
from timbrespace.audio.host import AudioError, AudioProcess
from timbrespace.config import Config
from timbrespace.engines.patch import PatchEngine
from timbrespace.models.checkpoint import CheckpointError
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch.bank import BankFormatError
from timbrespace.patch.library import PresetLibrary
from timbrespace.protocol.discovery import Advertiser
from timbrespace.protocol.transport import OscServer
from timbrespace.state import load_state, save_state

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server could not start; the text says what to fix."""


def txt_records(cfg: Config) -> dict[str, str]:
    """The TXT keys advertised with the service."""
    return {
        "txtvers": "1",
        "version": "1.1",
        "framing": cfg.network.tcp_framing,
        "api": timbrespace.PROTOCOL_VERSION,
        "engines": "patch",
    }


async def serve(
    cfg: Config, *, record: Path | None = None, announce: Callable[[str], None] | None = None
) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    loop = asyncio.get_running_loop()
    try:
        library = PresetLibrary(cfg.patch.banks, cfg.patch.user_bank)
        space = PatchSpace.load(cfg.patch.model, device=cfg.inference.device, num_threads=cfg.inference.threads)
    except (BankFormatError, CheckpointError, OSError, ValueError) as e:
        raise StartupError(str(e)) from None
    audio = AudioProcess(cfg.audio, record)
    try:
        backend = audio.start()
    except AudioError as e:
        raise StartupError(str(e)) from None
    advertiser: Advertiser | None = None
    osc: OscServer | None = None
    flush_armed = False

    def defer(delay: float) -> None:
        nonlocal flush_armed
        if not flush_armed:
            flush_armed = True
            loop.call_later(max(delay, 0.0), run_flush)

    def run_flush() -> None:
        nonlocal flush_armed
        flush_armed = False
        engine.flush()

    engine = PatchEngine(space, library, audio, block_period=audio.block_size / audio.sample_rate, defer=defer)
    try:
        saved = load_state(cfg.state.path) if cfg.state.persist else {}
        if "patch" in saved:
            engine.restore(saved["patch"])
        elif cfg.patch.initial_preset:
            engine.handlers()["/patch/load"]((cfg.patch.initial_preset,), 0.0)
        else:
            engine.handlers()["/latent"](tuple(cfg.patch.initial_latent), 0.0)
            engine.flush()
        engine.activate(0.0)
        info = ServerInfo(backend, audio.sample_rate, audio.block_size, str(space.device))
        app = App(engine, audio, info, audio.stats)
        osc = OscServer(
            app.handle,
            app.on_malformed,
            host=cfg.network.host,
            port=cfg.network.port,
            tcp_framing=cfg.network.tcp_framing,
            max_datagram=cfg.network.max_datagram,
        )
        try:
            await osc.start()
        except OSError as e:
            raise StartupError(
                f"cannot listen on {cfg.network.host}:{cfg.network.port}: {e.strerror or e}"
            ) from None
        server = osc
        app.send = osc.send

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

        async def watch() -> None:
            nonlocal status
            while not stop.is_set():
                await asyncio.sleep(0.25)
                if not audio.alive:
                    log.error("the audio process died; shutting down")
                    status = 1
                    stop.set()

        ticker = asyncio.create_task(watch())
        host, port = osc.udp_address
        zc = ""
        if cfg.network.zeroconf:
            advertiser = Advertiser(
                cfg.network.instance_name(), port, txt_records(cfg), interfaces=cfg.network.interfaces
            )
            await advertiser.start()
            zc = f", zeroconf {advertiser.name!r}"
        line = (
            f"timbrespace {timbrespace.__version__} ready: udp://{host}:{port} tcp://{osc.tcp_address[0]}:"
            f"{osc.tcp_address[1]} (audio {backend} {audio.sample_rate} Hz/{audio.block_size}, "
            f"engine patch, device {space.device}{zc})"
        )
        (announce or (lambda s: print(s, flush=True)))(line)
        await stop.wait()
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
        if cfg.state.persist:
            try:
                save_state(cfg.state.path, {"patch": engine.snapshot()})
            except OSError as e:
                print(f"timbrespace: could not save state to {cfg.state.path}: {e}", file=sys.stderr)
        audio.stop()
