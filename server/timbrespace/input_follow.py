"""The live input on the control side: its OSC settings, and the voice's timbre decoded as it plays.

The audio process tracks the input's pitch and level and drives the voice's pitch and amplitude
itself, at audio rate (``audio/live_input.py``). What it cannot do is run the timbre model: at
every control tick (one model frame, ~11.6 ms) while the input is on and voiced, this side reads
the tracked pitch from shared memory, has the inference worker decode one frame of the target's
timbre at that pitch (the same :class:`~timbrespace.engines.timbre_frames.TimbreFrames` batch as the
timbre engine's notes), normalises its wavetable to an RMS of 1 and writes it to the input's frame
slot; the audio side crossfades to it at its next block. Neither side waits: a decode that has not
landed leaves the voice on its previous table, at the right pitch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from timbrespace.config import Config
from timbrespace.engines.base import Handler, HandlerError, Reply
from timbrespace.engines.inference import Inference, Job
from timbrespace.engines.timbre_frames import FloatArray, FrameRequest, FrameResult, TimbreFrames
from timbrespace.input_encode import InputEncoder, InputSegment
from timbrespace.input_file import InputFileError, load_input
from timbrespace.link.frames import FrameSlots
from timbrespace.link.input import InputPlan, InputSettings, InputShared, band_widths
from timbrespace.link.wavetable import TABLE_SIZE
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.protocol.addresses import ADDRESSES
from timbrespace.protocol.declaration import Value
from timbrespace.protocol.replies import clip
from timbrespace.session.context import Context
from timbrespace.state import SavedInput

log = logging.getLogger(__name__)

#: The decoder's frame index is counted from the onset of each voiced stretch and held here
#: (about one second in): past the attack, the decoder's sustain.
SUSTAIN_FRAME = 86
VELOCITY = 100.0  # the decoder's velocity input; the level follows the input, not this
SILENT_DB = -120.0
#: While the input is voiced and alpha < 1, its timbre is encoded again this often (s).
ENCODE_EVERY_S = 0.25
#: /input/status's target name is clipped to this many UTF-8 bytes: the reply fits any UDP reply budget.
MAX_TARGET_BYTES = 32


class InputFollower:
    """Serves ``/input ...`` and decodes the input voice's frames (see the module docstring)."""

    def __init__(self, space: TimbreSpace, inference: Inference, shared: InputShared, frames: FrameSlots, *,
                 sample_rate: float, target: str | int = "trumpet", gate_db: float = InputSettings.gate_db,
                 plan: InputPlan | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.space = space
        self.inference = inference
        self.shared = shared
        self.frames = frames
        self.clock = clock
        self.tick_period = space.hop_s
        self.target = space.instrument(target)
        self.alpha = 1.0
        self.settings = InputSettings(gate_db=float(gate_db))
        shared.put(self.settings)
        self._kind = TimbreFrames(space, float(sample_rate), frames.table_size)
        self._noise_scale = math.sqrt(float(sample_rate) / space.sample_rate)
        self.plan = plan
        #: The layer the input belongs to (config input.layer): its addresses, feedback and saved state.
        self.layer = plan.layer if plan is not None else 0
        self.sample_rate = int(sample_rate)
        # Noise band power per unit gain, so a frame's harmonics and noise together are scaled to RMS 1.
        self._band_power = (band_widths(plan.noise_centres_hz, sample_rate) / (sample_rate / 2.0)
                            if plan is not None else None)
        self._encoder = InputEncoder(space)
        self._next_encode = 0.0
        # Until the input is encoded, its timbre point is the centre of the instruments' means.
        self._input_point: FloatArray = np.asarray(space.means.mean(axis=0))
        self.encoded = 0  # encodings landed
        self._onset: float | None = None
        self.decoded = 0  # frames written to the slot
        #: Told when the input is turned on or off (InputTicks: no tick runs while it is off).
        self.switched: Callable[[bool], None] | None = None

    @classmethod
    def build(cls, cfg: Config, timbre: Any, inference: Inference, shared: InputShared, frames: FrameSlots,
              sample_rate: float, plan: InputPlan | None = None,
              clock: Callable[[], float] = time.monotonic) -> InputFollower:
        """The follower the config asks for, on the timbre engine's model (``PreparedTimbre``)."""
        try:
            return cls(timbre.space, inference, shared, frames, sample_rate=sample_rate, target=cfg.input.target,
                       gate_db=cfg.input.gate, plan=plan, clock=clock)
        except ValueError as e:
            raise InputFileError(f"config input.target: {e}") from None

    def handlers(self) -> dict[str, Handler]:
        """Address -> handler."""
        return {
            "/input": self._on,
            "/input/target": self._target,
            "/input/alpha": self._alpha,
            "/input/gain": self._set("gain_db"),
            "/input/transpose": self._set("transpose"),
            "/input/dry": self._set("dry"),
            "/input/gate": self._set("gate_db"),
            "/input/status": self._status,
        }

    def _publish(self, s: InputSettings) -> None:
        switched = s.on != self.settings.on
        self.settings = s
        self.shared.put(s)
        if switched and self.switched is not None:
            self.switched(s.on)

    def _on(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self._onset = None
        self._publish(replace(self.settings, on=bool(args[0])))
        return []

    def _target(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        ref = args[0]
        try:
            self.target = self.space.instrument(ref if isinstance(ref, str) else int(ref))
        except ValueError as e:
            raise HandlerError(f"/input/target: {e}") from None
        return []

    def _alpha(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        self.alpha = float(args[0])
        return []

    def _set(self, name: str) -> Handler:
        def handler(args: tuple[Value, ...], ctx: Context) -> list[Reply]:
            values: dict[str, Any] = {name: float(args[0])}
            self._publish(replace(self.settings, **values))
            return []

        return handler

    # -- the layer's state: fed back to its subscribers, kept in its saved state ---------------------
    def state_messages(self) -> list[tuple[str, tuple[Value, ...]]]:
        """The input's settings as the messages that set them."""
        s = self.settings
        return [("/input", (int(s.on),)), ("/input/target", (self.space.instruments[self.target],)),
                ("/input/alpha", (self.alpha,)), ("/input/gain", (s.gain_db,)),
                ("/input/transpose", (s.transpose,)), ("/input/dry", (s.dry,)), ("/input/gate", (s.gate_db,))]

    def snapshot(self) -> dict[str, Any]:
        """Plain data for the state file (its layer's ``input`` entry)."""
        s = self.settings
        return {"on": s.on, "target": self.space.instruments[self.target], "alpha": self.alpha,
                "gain": s.gain_db, "transpose": s.transpose, "dry": s.dry, "gate": s.gate_db}

    def restore(self, saved: SavedInput | None) -> None:
        """The settings a state file kept (already checked against the addresses' ranges); an
        instrument this model does not have keeps the config's target, with a warning."""
        if saved is None:
            return
        if saved.target is not None:
            try:
                self.target = self.space.instrument(saved.target)
            except ValueError as e:
                log.warning("state: input.target: %s; using the config's", e)
        if saved.alpha is not None:
            self.alpha = saved.alpha
        s = self.settings
        self._publish(InputSettings(
            s.on if saved.on is None else saved.on, s.gain_db if saved.gain is None else saved.gain,
            s.transpose if saved.transpose is None else saved.transpose, s.dry if saved.dry is None else saved.dry,
            s.gate_db if saved.gate is None else saved.gate))

    # -- frames -----------------------------------------------------------------------------------
    def point(self) -> FloatArray:
        """The timbre code the voice is decoded with."""
        target = self.space.means[self.target]
        return np.asarray(self._input_point + self.alpha * (target - self._input_point))

    def tick(self, now: float) -> None:
        """Have one frame decoded at the tracked pitch while the input is on and voiced."""
        if not self.settings.on:
            return
        tr = self.shared.tracked()
        if not tr.voiced or tr.f0 <= 0.0:
            self._onset = None
            return
        if self._onset is None:
            self._onset = now
        lo, hi = self.space.pitch_range
        midi = 69.0 + 12.0 * math.log2(tr.f0 / 440.0) + self.settings.transpose
        request = FrameRequest(
            self.point(), np.zeros(self.space.latent_dim), np.array([min(max(midi, lo), hi)]),
            np.array([min(int((now - self._onset) / self.space.hop_s), SUSTAIN_FRAME)], dtype=np.int64),
            np.array([VELOCITY]), np.array([self._noise_scale]))
        self.inference.submit(Job(self._kind, request, self._landed, owner=(self, "input")))
        if self.alpha < 1.0 and now >= self._next_encode:
            self._next_encode = now + ENCODE_EVERY_S
            segment = self.shared.latest(round(self._encoder.seconds() * self.sample_rate))
            self.inference.submit(Job(self._encoder, InputSegment(segment, self.sample_rate), self._encoded,
                                      owner=(self, "encode")))

    def _encoded(self, z: FloatArray) -> None:
        """The input's timbre code landed: later frames are decoded from it (alpha < 1)."""
        self._input_point = z
        self.encoded += 1

    def _landed(self, result: FrameResult) -> None:
        """A frame decoded: scaled to an RMS of 1, harmonics and noise together (the audio side applies the
        input's level), to the slot."""
        table, noise = result.tables[0], result.noise[0]
        power = float(np.mean(np.square(table, dtype=np.float64)))
        if self._band_power is not None and len(self._band_power) == len(noise):
            power += float(np.sum(np.square(noise) * self._band_power))
        if not power > 0.0 or not self.settings.on:
            return
        rms = math.sqrt(power)
        self.frames.put(0, table / rms, noise / rms, float(result.f0[0]))
        self.decoded += 1

    # -- what /status and /input/status report -------------------------------------------------------
    def status(self) -> tuple[float, float]:
        """The input's level (dBFS, RMS) and tracked pitch (Hz, 0 when unvoiced); silence when off."""
        if not self.settings.on:
            return SILENT_DB, 0.0
        tr = self.shared.tracked()
        level = 20.0 * math.log10(tr.level) if tr.level > 10 ** (SILENT_DB / 20.0) else SILENT_DB
        return level, tr.f0 if tr.voiced else 0.0

    def latency(self) -> tuple[float, float, int]:
        """p50 and p99 (ms) of the newest onset-to-pitch latencies the audio side measured, and how many
        it measured in all (``audio/input_latency.py``); zeros before the first."""
        count, samples = self.shared.latencies()
        if not count:
            return 0.0, 0.0, 0
        p50, p99 = np.percentile(samples, [50, 99]) * (1000.0 / self.sample_rate)
        return float(p50), float(p99), count

    def report(self) -> tuple[Value, ...]:
        """``/input/status.reply``'s key value pairs."""
        level, f0 = self.status()
        p50, p99, count = self.latency()
        return status_reply(self.settings, self.space.instruments[self.target], self.alpha, level, f0, p50, p99,
                            count)

    def _status(self, args: tuple[Value, ...], ctx: Context) -> list[Reply]:
        return [("/input/status.reply", self.report())]


def input_handlers(follower: InputFollower | None, layers: int, timbre: bool) -> list[dict[str, Handler]]:
    """Each layer's /input handlers: the follower's on its layer, a /fail naming that layer on the
    others, a /fail saying there is no input when the server has none; none without the timbre engine."""
    if not timbre:
        return [{} for _ in range(layers)]
    if follower is None:
        return [no_input_handlers() for _ in range(layers)]
    return [follower.handlers() if i == follower.layer else no_input_handlers(follower.layer) for i in range(layers)]


def status_reply(s: InputSettings, target: str, alpha: float, level_db: float, f0: float, p50_ms: float,
                 p99_ms: float, count: int) -> tuple[Value, ...]:
    """``/input/status.reply``'s key value pairs (every number 4 bytes on the wire; the target's name
    clipped to MAX_TARGET_BYTES, so the reply fits any UDP reply budget)."""
    return ("on", int(s.on), "target", clip(target, MAX_TARGET_BYTES), "alpha", float(alpha),
            "gain_db", float(s.gain_db), "transpose", float(s.transpose), "dry", float(s.dry),
            "gate_db", float(s.gate_db), "level_db", float(level_db), "f0", float(f0), "voiced", int(f0 > 0.0),
            "latency_p50_ms", float(p50_ms), "latency_p99_ms", float(p99_ms), "latency_count", int(count))


def no_input_handlers(owner: int | None = None) -> dict[str, Handler]:
    """The /input addresses where no input is: each answers /fail saying why (``owner``: the layer
    the input belongs to, on the other layers; None: the server was started without an input)."""

    def refuse(path: str) -> Handler:
        def handler(args: tuple[Value, ...], ctx: Context) -> list[Reply]:
            if owner is not None:
                raise HandlerError(f"{path}: the live input belongs to layer {owner} (config input.layer), not "
                                   f"layer {ctx.layer}; send /layer/{owner}{path}, or play that layer (/layer "
                                   f"{owner})")
            raise HandlerError(f"{path}: this server has no live input; start it with `timbrespace serve "
                               "--input FILE.wav` or `--input-device` (config input.file, input.device)")

        return handler

    return {a.path: refuse(a.path) for a in ADDRESSES if a.group == "input"}


def input_plan(cfg: Config, timbre: Any, path: str | os.PathLike[str] | None, loop: bool) -> InputPlan:
    """What the audio side builds for the input in ``path`` (InputFileError when it cannot be played),
    or for the audio device's input (``path`` None); ``timbre``: the timbre engine's ``PreparedTimbre``,
    whose noise bands the voice shares."""
    sr = cfg.audio.sample_rate
    samples = load_input(path, sr) if path is not None else None
    return InputPlan(samples, sr, loop, tuple(timbre.noise_centres_hz()), TABLE_SIZE, cfg.input.window,
                     cfg.input.trackers, cfg.input.onset, cfg.input.onset_window, cfg.input.layer,
                     low_onset_window_ms=cfg.input.low_onset_window)


class InputTicks:
    """The follower's ticks on the event loop, on their own grid (due + k * period), while it is on:
    off, no timer is armed (the input path off costs nothing on this side either)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, follower: InputFollower) -> None:
        self._loop = loop
        self._follower = follower
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """Whether a tick is armed."""
        return self._handle is not None

    def start(self) -> None:
        """Tick whenever the input is on, from now on."""
        self._follower.switched = self._switched
        self._switched(self._follower.settings.on)

    def _switched(self, on: bool) -> None:
        if not on:
            self.close()
        elif self._handle is None:
            self._run(self._loop.time())

    def _run(self, due: float) -> None:
        now = self._loop.time()
        self._follower.tick(now)
        due = max(due + self._follower.tick_period, now)
        self._handle = self._loop.call_at(due, self._run, due)

    def close(self) -> None:
        """No more ticks."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
