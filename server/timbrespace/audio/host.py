"""The audio process: pyo, the synth and a per-block callback, and its handle on the control side.

The audio process runs nothing but pyo and :class:`~timbrespace.audio.player.Player`; see
docs/architecture.md for why it is a separate process. Backends:

``jack``       pyo's JACK client (JACK's thread drives the blocks)
``portaudio``  pyo's PortAudio output (the default device)
``null``       pyo's ``manual`` backend driven by a real-time clock: no device, every block still
               rendered on time (so ``--record`` works on a headless box)

Late blocks are counted by the process itself: under ``null`` a block is late when it finishes
after the moment its samples are due; under ``jack`` each xrun JACK reports is one; under
``portaudio`` (no such report) when the gap between two block callbacks exceeds 1.5 periods.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from timbrespace.audio.clock import jack_xrun_monitor, run_clocked
from timbrespace.collector import freeze_startup
from timbrespace.config import AudioConfig
from timbrespace.engines.registry import SPECS, AudioPlan
from timbrespace.link import commands as C
from timbrespace.link.frames import FrameSlots
from timbrespace.link.input import InputPlan, InputShared
from timbrespace.link.layers import LayerSound
from timbrespace.link.mailbox import PatchMailbox
from timbrespace.link.outbox import Outbox
from timbrespace.link.stats import (
    BLOCK_SIZE,
    DROPPED,
    LATE,
    LEVEL,
    LEVEL_FALL_DB_S,
    SAMPLE_RATE,
    TAKEN,
    AudioStats,
)

log = logging.getLogger(__name__)

_RECV = 256
_PR_SET_PDEATHSIG = 1


class AudioError(RuntimeError):
    """The audio process could not start or died."""


def jack_running() -> bool:
    """True when a JACK server accepts connections (checked without starting one)."""
    server = os.environ.get("JACK_DEFAULT_SERVER", "default")
    path = Path("/dev/shm") / f"jack_{server}_{os.getuid()}_0"
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """Linux: terminate this process when the control process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _realtime(priority: int) -> str:
    """Ask for SCHED_FIFO at ``priority`` (what JACK and scsynth do); a plain process where refused.

    Under full load on a small machine the kernel's fair scheduler may leave a woken audio
    process waiting for several milliseconds, longer than a block; a real-time policy runs it
    as soon as its block is due.
    """
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return "off"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        return f"refused ({e.strerror})"
    return f"SCHED_FIFO {priority}"


def _choose_backend(requested: str, pyo: Any) -> str:
    if requested != "auto":
        return requested
    if jack_running():
        return "jack"
    with contextlib.suppress(Exception), _quiet_stderr():
        if pyo.pa_count_devices() > 0 and pyo.pa_get_default_output() >= 0:
            return "portaudio"
    return "null"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C libraries' stderr (ALSA lists every device it cannot open while PortAudio probes)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def audio_main(
    sock: socket.socket,
    stats_name: str,
    mailbox_names: Sequence[str],
    cfg: dict[str, Any],
    record: str | None,
    plans: Sequence[AudioPlan],
    frame_names: Sequence[dict[str, str]],
    heard: Sequence[str],
    sounds: Sequence[LayerSound],
    live_input: tuple[InputPlan, str, str] | None = None,
) -> None:
    """Entry point of the audio process (``live_input``: the input's plan and its shared memory names)."""
    acfg = AudioConfig(**cfg)
    # Ctrl-C reaches the whole process group; the control process decides when audio stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    rt = _realtime(acfg.realtime_priority)
    # A short switch interval bounds how long another thread of this process could hold the GIL
    # when a block is due (measured: 38 late blocks in 8 s at 5 ms, 0 at 1 ms).
    sys.setswitchinterval(acfg.switch_interval)
    os.environ.setdefault("PYO_GUI_WX", "0")
    import pyo

    from timbrespace.audio.master import master_bus
    from timbrespace.audio.parts import LayerMix, build_parts, player_args
    from timbrespace.audio.player import LayerVoices, Player

    stats = AudioStats.attach(stats_name)
    mailboxes = [PatchMailbox.attach(name) for name in mailbox_names]
    backend = _choose_backend(acfg.backend, pyo)
    server = pyo.Server(
        sr=acfg.sample_rate,
        nchnls=acfg.channels,
        buffersize=acfg.block_size,
        # A device input needs the server's input (the null backend has none: its input is silent).
        duplex=int(live_input is not None and live_input[0].samples is None and backend != "null"),
        audio="manual" if backend == "null" else backend,
        jackname="timbrespace",
    )
    server.setVerbosity(1)
    server.boot()
    if not server.getIsBooted():
        sock.send(C.ready(0, 0, f"error:{backend}"))
        # Out at once: the shared-memory views are still exported, and interpreter shutdown
        # would print a BufferError traceback from SharedMemory.__del__ that looks like a crash.
        os._exit(0)
    sr = int(server.getSamplingRate())
    bs = acfg.block_size
    period = bs / sr
    stats.array[SAMPLE_RATE] = sr
    stats.array[BLOCK_SIZE] = bs
    # Every layer is a whole instrument: its own voices of every engine (a layer cannot take
    # another's), its own frame slots and mailbox.
    frames = [{p.engine: FrameSlots.attach(names[p.engine], p.frames.slots, p.frames.table_size, p.frames.n_noise)
               for p in plans if p.frames is not None} for names in frame_names]
    parts = [build_parts(plans, f, sr, acfg.polyphony) for f in frames]
    live = None
    if live_input is not None:
        from timbrespace.audio.live_input import attach

        live = attach(*live_input, sr, bs)
    mix = LayerMix([({name: part.output for name, part in lp.items()}, h, sound)
                    for lp, h, sound in zip(parts, heard, sounds, strict=True)],
                   {live_input[0].layer: live.output} if live is not None and live_input is not None else None)
    bus = master_bus(mix.output, acfg.ceiling_db)
    bus.output.out()
    # The output meter: each block's peak of the sum (before the master's limiter), held and
    # falling like a PPM (read by /status).
    peaks = pyo.PeakAmp(mix.output)
    fall = 10.0 ** (-LEVEL_FALL_DB_S * period / 20.0)
    sock.setblocking(False)

    def receive() -> bytes | None:
        try:
            data = sock.recv(_RECV)
        except BlockingIOError:
            return None
        stats.array[TAKEN] += 1
        return data

    def reply(data: bytes) -> None:
        try:
            sock.send(data)
        except BlockingIOError:
            stats.array[DROPPED] += 1

    player = Player([LayerVoices(mailbox=box, select=em.select, place=partial(mix.place, i), **player_args(lp))
                     for i, (box, em, lp) in enumerate(zip(mailboxes, mix.engines, parts, strict=True))],
                    stats, receive, reply, clock=time.monotonic)
    last = [0.0]
    xruns = jack_xrun_monitor(stats) if backend == "jack" else None
    count_gaps = backend == "portaudio"

    def callback() -> None:
        now = time.monotonic()
        if count_gaps and last[0] > 0.0 and now - last[0] > 1.5 * period:
            stats.array[LATE] += round((now - last[0]) / period) - 1
        last[0] = now
        player.block(now)
        if live is not None:
            live.block()
        a = stats.array
        a[LEVEL] = max(max(peaks.get(all=True)), a[LEVEL] * fall)

    server.setCallback(callback)
    if record:
        server.recordOptions(filename=record, fileformat=0, sampletype=1)
        server.recstart(record)
    freeze_startup()  # before the first block: the callback must never wait for a full collection
    server.start()
    sock.send(C.ready(sr, bs, backend, rt))
    try:
        if backend == "null":
            run_clocked(server, player, stats, period)
        else:
            while not player.quit:
                time.sleep(0.05)
    finally:
        if xruns is not None:
            xruns.deactivate()
            xruns.close()
        if record:
            server.recstop()
        server.stop()
        server.shutdown()
        stats.close()
        if live is not None:
            live.close()
        for box in mailboxes:
            box.close()
        for layer_frames in frames:
            for f in layer_frames.values():
                f.close()


class AudioProcess:
    """Control-side handle: start, send commands, publish patches, read stats, stop."""

    def __init__(
        self,
        cfg: AudioConfig,
        record: Path | None = None,
        plans: Sequence[AudioPlan] | None = None,
        layers: Sequence[LayerSound] = (LayerSound(),),
        heard: Sequence[str] | None = None,
        live_input: InputPlan | None = None,
    ) -> None:
        self.cfg = cfg
        self.record = record
        #: Each layer's placement in the mix; the process builds every engine's voices for each.
        self.sounds = tuple(layers)
        if not 1 <= len(self.sounds) <= C.MAX_LAYERS:
            raise ValueError(f"{len(self.sounds)} layers: expected 1 to {C.MAX_LAYERS}")
        if heard is not None and len(heard) != len(self.sounds):  # checked before any memory is shared
            raise ValueError(f"{len(heard)} engines heard for {len(self.sounds)} layers: expected one per layer")
        self.stats = AudioStats.create()
        self.mailboxes = [PatchMailbox.create() for _ in self.sounds]
        #: What the audio process builds, one plan per engine; by default the first engine's voices,
        #: which every server runs and which need nothing from a model.
        self.plans = tuple(plans) if plans is not None else (AudioPlan(SPECS[0].name, SPECS[0].audio),)
        #: The engine heard on each layer (a restarted process starts with them); by default the
        #: first plan's on every layer.
        self.heard = list(heard) if heard is not None else [self.plans[0].engine] * len(self.sounds)
        #: Each layer's frame slots, by engine, for the engines that have some (shared with the audio process).
        self.layer_frames = [{p.engine: FrameSlots.create(p.frames.slots, p.frames.table_size, p.frames.n_noise)
                              for p in self.plans if p.frames is not None} for _ in self.sounds]
        #: The live input the process plays (``serve --input``), its settings/tracking and its frame slot.
        self.live_input = live_input
        self.input_shared = InputShared.create() if live_input is not None else None
        self.input_frames = (FrameSlots.create(1, live_input.table_size, len(live_input.noise_centres_hz))
                             if live_input is not None else None)
        self._sock, self._child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc: Any = None
        #: True from a spawn until the process says it renders (see poll_started).
        self.starting = False
        self.backend = ""
        self.scheduling = ""
        self.sample_rate = 0
        self.block_size = 0
        #: Every event command goes through here: releases are never dropped (see link.outbox).
        self.outbox = Outbox(self._send_raw, taken=lambda: int(self.stats.array[TAKEN]))

    def start(self, timeout: float = 60.0) -> str:
        """Spawn the audio process and wait until it renders; returns the backend in use."""
        if self.cfg.backend == "jack" and not jack_running():
            # Asked before spawning: pyo would try to start a JACK server itself and print a screen
            # of libjack's complaints before failing.
            self.stop()
            raise AudioError("audio backend 'jack': no JACK server is running; start one first "
                             "(for example `jackd -d dummy -r 48000 -p 256`), or use --audio null or auto")
        self._spawn(self.cfg)
        deadline = time.monotonic() + timeout
        while True:
            try:
                backend = self.poll_started()
            except AudioError:
                self.stop()
                raise
            if backend is not None:
                return backend
            if time.monotonic() > deadline:
                self.stop()
                raise AudioError(f"the audio process did not start within {timeout:.0f} s")
            time.sleep(0.05)

    def restart(self, backend: Literal["jack", "portaudio", "null"]) -> None:
        """Replace the audio process with a new one on ``backend``; :meth:`poll_started` says when it renders.

        The old process is killed, not asked: it is restarted because it stopped rendering, so it
        would not read a QUIT. The new one gets a fresh socket (nothing queued for the old one
        reaches it) and the same shared memory: it applies the patch in the mailbox at its first
        block and starts with no voice sounding. It runs at the sample rate and block size the
        control side already uses.
        """
        self._kill()
        self.record = None  # a new process would overwrite the recording made so far
        for s in (self._sock, self._child_sock):
            s.close()
        self._sock, self._child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.outbox.clear()
        cfg = replace(self.cfg, backend=backend, sample_rate=self.sample_rate or self.cfg.sample_rate)
        self._spawn(cfg)

    def _spawn(self, cfg: AudioConfig) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that has torch and threads in it
        self.starting = True
        self._proc = ctx.Process(
            target=audio_main,
            name="timbrespace-audio",
            args=(self._child_sock, self.stats.name, [box.name for box in self.mailboxes], asdict(cfg),
                  str(self.record) if self.record else None, self.plans,
                  [{name: f.name for name, f in lf.items()} for lf in self.layer_frames], list(self.heard),
                  self.sounds, self._input_args()),
            daemon=True,
        )
        self._proc.start()
        self._sock.setblocking(False)

    def _input_args(self) -> tuple[InputPlan, str, str] | None:
        if self.live_input is None or self.input_shared is None or self.input_frames is None:
            return None
        return self.live_input, self.input_shared.name, self.input_frames.name

    def poll_started(self) -> str | None:
        """The backend once the process spawned last is rendering; None while it starts (never blocks).

        Raises AudioError when it exited or its backend could not start.
        """
        if not self.starting:
            return self.backend
        try:
            msg = C.decode(self._sock.recv(_RECV))
        except (BlockingIOError, InterruptedError):
            if self._proc is not None and not self._proc.is_alive():
                code = self._proc.exitcode
                self._kill()
                raise AudioError(f"the audio process exited while starting (exit code {code}); "
                                 "see its log above") from None
            return None
        name = str(msg.args[2]) if msg.kind is C.Kind.READY else "error:unexpected reply"
        if name.startswith("error:"):
            self._kill()
            raise AudioError(f"audio backend {name.removeprefix('error:')!r} could not start (its own messages "
                             "are above); use --audio null to serve without a sound card")
        self.starting = False
        self.sample_rate, self.block_size, self.backend = int(msg.args[0]), int(msg.args[1]), name
        self.scheduling = str(msg.args[3])
        log.info("audio process: backend %s, %d Hz, %d-sample blocks, scheduling %s",
                 name, self.sample_rate, self.block_size, self.scheduling)
        return self.backend

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(2.0)
            self._proc = None

    def fileno(self) -> int:
        """The socket replies arrive on (for an event loop's add_reader)."""
        return self._sock.fileno()

    @property
    def dropped(self) -> int:
        """Commands refused because the socket was full."""
        return self.outbox.refused

    def send(self, data: bytes) -> bool:
        """Queue one event command; False when refused (a release is never refused: it waits)."""
        return self.outbox.send(data)

    def pump(self) -> bool:
        """Retry releases that waited for room; True while some still wait."""
        return self.outbox.pump()

    def _send_raw(self, data: bytes) -> bool:
        if self.starting:
            return False  # not rendering yet: starts are refused, releases wait in the outbox
        try:
            self._sock.send(data)
            return True
        except (BlockingIOError, InterruptedError):
            return False

    @property
    def frames(self) -> dict[str, FrameSlots]:
        """Layer 0's frame slots, by engine."""
        return self.layer_frames[0]

    def put_patch(self, values: npt.NDArray[np.float64], arrival: float, layer: int = 0) -> None:
        """Publish ``layer``'s newest patch; the audio side applies it at its next block."""
        self.mailboxes[layer].put(values, arrival)

    def replies(self) -> list[C.Command]:
        """Every reply waiting (never blocks)."""
        out = []
        while True:
            try:
                out.append(C.decode(self._sock.recv(_RECV)))
            except (BlockingIOError, InterruptedError):
                return out

    @property
    def alive(self) -> bool:
        """Whether the audio process is still running."""
        return self._proc is not None and self._proc.is_alive()

    @property
    def exitcode(self) -> int | None:
        """The audio process's exit status once it ended (negative: the signal that ended it)."""
        return None if self._proc is None else self._proc.exitcode

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the audio process to finish, wait, and release shared memory."""
        if self.starting or self.stats.stall_s(time.monotonic()) > 0.0:
            timeout = min(timeout, 1.0)  # it is not rendering, so it may never read the QUIT
        if self._proc is not None:
            if self._proc.is_alive():
                with contextlib.suppress(OSError):
                    self._sock.setblocking(True)
                    self._sock.settimeout(1.0)
                    self._sock.send(C.simple(C.Kind.QUIT))
                self._proc.join(timeout)
                if self._proc.is_alive():
                    log.warning("audio process did not stop in %.0f s; terminating it", timeout)
                    self._proc.terminate()
                    self._proc.join(2.0)
            self._proc = None
        for s in (self._sock, self._child_sock):
            s.close()
        self.stats.close()
        for box in self.mailboxes:
            box.close()
        for lf in self.layer_frames:
            for f in lf.values():
                f.close()
        if self.input_shared is not None:
            self.input_shared.close()
        if self.input_frames is not None:
            self.input_frames.close()
