"""The live input in the audio process: the input played, its pitch and level tracked, a voice that follows.

::

    input (a file's TableRead, or the device's Input)
      ─ gain ─┬─ N Yins (window = hop, staggered) ─ newest ─ x transpose ─ Port ─▶ phasor of the voice
              ├─ RMS (one-pole at 20 Hz on x²) ─▶ level ─┬─ > gate (x onset hold) ─ Port ─┐
              │                                           └──────────────────────────────x──▶ the voice's amplitude
              ├─ TableFill ─▶ the shared ring (the control side's timbre encoder)
              └─ x dry ─────────────────────────────────────────────────────────────────▶ out
    voice: two wavetables crossfaded (the control side's frames) + the noise bank, x amplitude

The pitch and the level reach the voice at audio rate inside pyo; only the timbre (a wavetable
and noise gains decoded by the control side at the tracked pitch) crosses the process boundary,
through one frame slot. Each frame is scaled on the control side so that its harmonics and noise
together have an RMS of 1: the voice has the input's RMS level. While the input is off every
object is stopped: the callback costs one comparison per block.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyo

from timbrespace.audio.additive import CROSSFADE_S, NoiseBank, _write
from timbrespace.link.frames import FrameSlots
from timbrespace.link.input import MAX_F0, RING, InputPlan, InputSettings, InputShared, min_f0, window_for

#: The level is the RMS over a one-pole low-pass of the squared input at this corner: an 8 ms
#: time constant, and a ripple of a few percent at twice the lowest pitch.
LEVEL_HZ = 20.0
GATE_S = 0.005  # the gate opens and closes over this long (no click)
GLIDE_S = 0.001  # the voice's pitch moves to each new estimate over this long
AGREE_OCTAVES = 25.0 / 1200.0  # onset hold: two fresh estimates this close open the voice
FADE_S = 0.02  # /input 1 and /input 0 fade the path in and out over this long
YIN_TOLERANCE = 0.2  # pyo's default: the dip the Yin difference function must reach
YIN_CUTOFF = 2000.0  # Hz: the tracker's low-pass keeps the first harmonics of pitches up to MAX_F0


def _db(value: float) -> float:
    return float(10.0 ** (value / 20.0))


class LiveInput:
    """The input chain of :mod:`this module <timbrespace.audio.live_input>`, driven at each block."""

    def __init__(self, plan: InputPlan, shared: InputShared, frames: FrameSlots, sample_rate: float,
                 block_size: int) -> None:
        if frames.slots != 1 or frames.table_size != plan.table_size:
            raise ValueError(f"the live input needs one frame slot of {plan.table_size} samples")
        self.shared = shared
        self.frames = frames
        self.settings = InputSettings()
        self.sample_rate = float(sample_rate)
        self.block_s = block_size / float(sample_rate)
        self.length_s = len(plan.samples) / plan.sample_rate if plan.samples is not None else 0.0
        self.loop = plan.loop
        self._position = 0.0
        self._table = np.zeros(frames.table_size, np.float32)
        self._noise = np.zeros(frames.n_noise, np.float32)
        # A file's input is read from memory (a DataTable sized to it; TableRead plays it once or
        # looped); a device's is pyo's Input (the server is booted duplex for it).
        self.source: Any
        if plan.samples is not None:
            self._source_table = pyo.DataTable(len(plan.samples))
            _write(self._source_table, plan.samples)
            self.source = pyo.TableRead(self._source_table, freq=plan.sample_rate / len(plan.samples),
                                        loop=int(plan.loop))
        else:
            self.source = pyo.Input(chnl=0)
        self.gain = pyo.SigTo(1.0, time=0.02)
        self.signal = self.source * self.gain
        # pyo's Yin analyses non-overlapping windows (its hop is its window): N of them, started
        # window/N apart (whole blocks), update the pitch N times per window; the newest is heard.
        self.window = window_for(plan.window_ms, sample_rate)
        self.min_f0 = min_f0(self.window, sample_rate)
        blocks = max(1, self.window // block_size)  # blocks per window
        n = max(1, min(plan.trackers, blocks))
        self._stagger = blocks // n  # blocks between two trackers' starts
        self.yins = [pyo.Yin(self.signal, tolerance=YIN_TOLERANCE, minfreq=self.min_f0, maxfreq=MAX_F0,
                             cutoff=YIN_CUTOFF, winsize=self.window) for _ in range(n)]
        self._yin_values = [0.0] * n
        self._newest = 0
        self._started = 0  # trackers started so far (the first /input 1 starts them one by one)
        self._on_blocks = 0  # blocks rendered while on
        # pyo's Selector crashes the process with a single input: one tracker is heard directly.
        self.yin = pyo.Selector(self.yins, voice=0.0) if n > 1 else pyo.Sig(self.yins[0])
        self._b_select = list(self.yin._base_objs) if n > 1 else []
        self._square = self.signal * self.signal
        self._power = pyo.Tone(self._square, freq=LEVEL_HZ)
        self.level = pyo.Sqrt(self._power)
        self.threshold = pyo.SigTo(_db(self.settings.gate_db), time=0.0)
        # Open when louder than the gate and once the tracker has found a pitch (before its first
        # window the voice would sound a frozen phase: a step).
        self._loud = pyo.Compare(self.level, self.threshold, ">")
        self._pitched = pyo.Compare(self.yin, self.min_f0, ">=")
        # input.onset "pitch": closed at each onset until a tracker's window after it has been analysed.
        self.hold_onsets = plan.onset == "pitch"
        self._window_blocks = blocks
        self._hold = pyo.Sig(0.0 if self.hold_onsets else 1.0)
        self._b_hold = self._hold._base_objs[0]
        self._held = self.hold_onsets  # the hold is closed
        self._quiet = -1  # the last block that ended under the gate
        self._fresh = 0.0  # the last estimate from a window after the onset (0: none yet)
        self._updated = False  # a tracker updated at the end of the last block
        self._open = self._loud * self._pitched * self._hold
        self.gate = pyo.Port(self._open, risetime=GATE_S, falltime=GATE_S)
        self.amp = self.level * self.gate
        self.ratio = pyo.SigTo(1.0, time=0.02)
        self._heard_f0 = self.yin * self.ratio
        self.f0 = pyo.Port(self._heard_f0, risetime=GLIDE_S, falltime=GLIDE_S)
        # The voice: two phase-locked wavetables crossfaded frame to frame, as additive.AdditiveVoice.
        self._tables = (pyo.DataTable(frames.table_size), pyo.DataTable(frames.table_size))
        self._front = 0
        self._phase = pyo.Phasor(self.f0)
        pa, pb = (pyo.Pointer(t, self._phase) for t in self._tables)
        self._xfade = pyo.SigTo(0.0, time=CROSSFADE_S)
        self.voice = pyo.Interp(pa, pb, self._xfade, mul=self.amp)
        self.noise = NoiseBank(plan.noise_centres_hz, sample_rate, self.amp)
        # The input after its gain, for the control side's timbre encoder (InputShared's ring).
        self._fill_table = pyo.DataTable(RING)
        self._fill = pyo.TableFill(self.signal, self._fill_table)
        self._filled = 0  # the fill's position at the last block
        self.dry = pyo.SigTo(0.0, time=0.02)
        self._dry = self.signal * self.dry
        # /input 0 fades out over FADE_S, then stops every object (stopping at once would click).
        self.fader = pyo.SigTo(0.0, time=FADE_S)
        self._mono = pyo.Mix([self.voice, self.noise.out, self._dry], voices=1, mul=self.fader)
        self.output = pyo.Mix(self._mono, voices=2)  # the same in both channels
        self._fade_blocks = max(1, int(np.ceil(FADE_S / self.block_s)) + 1)
        self._stopping = 0  # blocks left until a fading input stops
        self._objects: list[Any] = [
            self.source, self.gain, self.signal, self.yin, self._square, self._power, self.level, self.threshold,
            self._loud, self._pitched, self._hold, self._open, self.gate, self.amp, self.ratio, self._heard_f0,
            self.f0, self._phase, pa, pb, self._xfade, self.voice, self.dry, self._dry, self.fader, self._mono,
            self.output, self._fill]
        self.on = True
        self._off()

    def _off(self) -> None:
        """Stop every object now (the fade is over, or nothing sounded)."""
        if self.on:
            for o in self._objects:
                o.stop()
            for y in self.yins:
                y.stop()
            self.noise.stop()
            self.on = False
        self._stopping = 0

    def _on(self) -> None:
        self._stopping = 0
        self.fader.setValue(1.0)
        if not self.on:
            for o in self._objects:
                o.play()
            for y in self.yins[: self._started]:  # stopped together, they kept their stagger
                y.play()
            if isinstance(self.source, pyo.TableRead):
                self.source.reset()  # the file plays from its start at each /input 1
            self._position = 0.0
            self.noise.play()
            self.on = True

    def apply(self, s: InputSettings) -> None:
        """New settings from the control side."""
        self.settings = s
        self.gain.setValue(_db(s.gain_db))
        self.ratio.setValue(float(2.0 ** (s.transpose / 12.0)))
        self.dry.setValue(float(s.dry))
        self.threshold.setValue(_db(s.gate_db))
        if s.on:
            self._on()
        elif self.on and not self._stopping:
            self.fader.setValue(0.0)
            self._stopping = self._fade_blocks

    def block(self) -> None:
        """The block's start: new settings, the newest frame, and the tracking published."""
        s = self.shared.take()
        if s is not None:
            self.apply(s)
        if not self.on:
            return
        if self._stopping:
            self._stopping -= 1
            if not self._stopping:
                self._off()
                return
        if self.frames.changed():
            got = self.frames.take(0, self._table, self._noise)
            if got is not None:
                back = 1 - self._front
                _write(self._tables[back], self._table)
                self._xfade.setValue(float(back))
                self._front = back
                self.noise.set_gains(self._noise)
        f0 = self._track()
        level = float(self.level.get())
        loud = level > _db(self.settings.gate_db)
        if self.hold_onsets:
            self._hold_onset(loud)
        voiced = loud and self.min_f0 <= f0 <= MAX_F0
        self.shared.track(f0, level, voiced, self._position)
        self._share_input()
        self._position += self.block_s
        if self.loop and 0.0 < self.length_s <= self._position:
            self._position -= self.length_s

    def _share_input(self) -> None:
        """Append what the fill wrote during the last block to the shared ring."""
        pos = int(self._fill.getCurrentPos())
        if pos == self._filled:
            return
        # A numpy view of a pyo table must not outlive the server: made and dropped here.
        view = np.asarray(self._fill_table.getBuffer())
        if pos > self._filled:
            self.shared.append(view[self._filled : pos])
        else:  # wrapped round
            self.shared.append(np.concatenate([view[self._filled :], view[:pos]]))
        del view
        self._filled = pos

    def _track(self) -> float:
        """Start the next staggered tracker when due; hear the one that updated last; its f0."""
        if self._started < len(self.yins) and self._on_blocks == self._started * self._stagger:
            self.yins[self._started].play()
            self._started += 1
        self._on_blocks += 1
        values = self._yin_values
        self._updated = False
        for k, y in enumerate(self.yins[: self._started]):
            v = float(y.get())
            if v != values[k]:
                values[k] = v
                self._updated = True
                if k != self._newest:
                    self._newest = k
                    for b in self._b_select:
                        b.setVoice(float(k))
        return values[self._newest]

    def _hold_onset(self, loud: bool) -> None:
        """Keep the voice closed from an onset until a tracker's window that began after it was analysed.

        Called at the start of block i (``_on_blocks`` is i + 1 by then) with the level at the end of
        block i - 1. A tracker that updated at the end of block i - 1 analysed blocks i - B .. i - 1
        (B blocks a window): fresh when they all follow the last quiet block.
        """
        block = self._on_blocks - 1
        if not loud:
            self._quiet = block - 1
            self._fresh = 0.0
            if not self._held:
                self._b_hold.setValue(0.0)
                self._held = True
        elif self._held and self._updated and block - self._window_blocks > self._quiet:
            # Two fresh estimates that agree (a window straddling the attack can be far off).
            f0 = self._yin_values[self._newest]
            if self._fresh > 0.0 and abs(math.log2(f0 / self._fresh)) < AGREE_OCTAVES:
                self._b_hold.setValue(1.0)
                self._held = False
            self._fresh = f0

    def close(self) -> None:
        """Stop everything and let go of the shared memory (before the server goes)."""
        self._off()
        self.shared.close()
        self.frames.close()


def attach(plan: InputPlan, shared_name: str, frames_name: str, sample_rate: float, block_size: int) -> LiveInput:
    """The audio process's input, on the shared memory the control side made."""
    frames = FrameSlots.attach(frames_name, 1, plan.table_size, len(plan.noise_centres_hz))
    return LiveInput(plan, InputShared.attach(shared_name), frames, sample_rate, block_size)

