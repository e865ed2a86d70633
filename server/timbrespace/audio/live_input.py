"""The live input in the audio process: the input played, its pitch and level tracked, a voice that follows.

::

    input (a file's TableRead, or the device's Input)
      ─ gain ─┬─ InputPitch (long and short Yins) ─ x transpose ─ one-pole ─▶ phasor of the voice
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

from typing import Any

import numpy as np
import pyo

from timbrespace.audio.additive import CROSSFADE_S, NoiseBank, _write
from timbrespace.audio.input_latency import OnsetLatency
from timbrespace.audio.input_pitch import InputPitch
from timbrespace.link.frames import FrameSlots
from timbrespace.link.input import MAX_F0, RING, InputPlan, InputSettings, InputShared

#: The level is the RMS over a one-pole low-pass of the squared input at this corner: an 8 ms
#: time constant, and a ripple of a few percent at twice the lowest pitch.
LEVEL_HZ = 20.0
GATE_S = 0.005  # the gate opens and closes over this long (no click)
GLIDE_S = 0.001  # the voice's pitch moves to each new estimate with this time constant
FADE_S = 0.02  # /input 1 and /input 0 fade the path in and out over this long


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
        # input.onset "pitch" promises the note's pitch from the first sample heard: two short
        # estimates must agree before the voice opens on them.
        self.pitch = InputPitch(self.signal, sample_rate, block_size, plan.window_ms, plan.trackers,
                                plan.onset_window_ms, agree_first=plan.onset == "pitch",
                                low_onset_window_ms=plan.low_onset_window_ms)
        self.min_f0 = self.pitch.min_f0
        self.block_size = block_size
        #: Each onset's latency to the voice at the note's pitch, counted here for /input/status.
        self.latency = OnsetLatency(block_size, self.pitch.window, shared.record_latency)
        self.yin = self.pitch.f0
        self._square = self.signal * self.signal
        self._power = pyo.Tone(self._square, freq=LEVEL_HZ)
        self.level = pyo.Sqrt(self._power)
        self.threshold = pyo.SigTo(_db(self.settings.gate_db), time=0.0)
        # Open when louder than the gate and once the tracker has found a pitch (before its first
        # window the voice would sound a frozen phase: a step).
        self._loud = pyo.Compare(self.level, self.threshold, ">")
        self._pitched = pyo.Compare(self.yin, self.min_f0, ">=")
        # input.onset "pitch": closed at each onset until the trackers know the note's pitch.
        self.hold_onsets = plan.onset == "pitch"
        self._hold = pyo.Sig(0.0 if self.hold_onsets else 1.0)
        self._b_hold = self._hold._base_objs[0]
        self._held = self.hold_onsets  # the hold is closed
        self._was_loud = False  # the level was over the gate at the last block's start
        self._snapped = False  # the pitch's glide is off for this block (a new note's pitch, or the hold opening)
        self._open = self._loud * self._pitched * self._hold
        self.gate = pyo.Port(self._open, risetime=GATE_S, falltime=GATE_S)
        self.amp = self.level * self.gate
        self.ratio = pyo.SigTo(1.0, time=0.02)
        self._heard_f0 = self.yin * self.ratio
        # A one-pole low-pass, not a Port: pyo's Port glides over 0.25 ms more than it is told, so a
        # new note's pitch could not be jumped to; at the corner's top (Nyquist) this one passes it
        # within a sample.
        self._glide_hz = 1.0 / (2.0 * np.pi * GLIDE_S)
        self._jump_hz = sample_rate / 2.0
        self.f0 = pyo.Tone(self._heard_f0, freq=self._glide_hz)
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
            self.source, self.gain, self.signal, self._square, self._power, self.level, self.threshold,
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
            self.pitch.stop()
            self.noise.stop()
            self.on = False
        self.latency.reset()
        self._was_loud = False
        self._stopping = 0

    def _on(self) -> None:
        self._stopping = 0
        self.fader.setValue(1.0)
        if not self.on:
            for o in self._objects:
                o.play()
            self.pitch.play()
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
        level = float(self.level.get())
        loud = level > _db(self.settings.gate_db)
        self._share_input()
        # The onset's sample: the trackers tell the windows that began after it from those with the
        # silence before it (which read low).
        onset = self._onset_offset() if loud and not self._was_loud else 0
        self._was_loud = loud
        f0 = self.pitch.block(loud, onset)
        # An armed onset estimate is a new note's pitch: jumped to on the sample it lands.
        snap = self.pitch.jumped or self.pitch.armed
        if self.hold_onsets:
            snap = self._hold_onset(loud) or snap
        if snap != self._snapped:
            # A new note's pitch is jumped to (the phasor keeps its phase: no click); estimates
            # within a note are glided between.
            self.f0.setFreq(self._jump_hz if snap else self._glide_hz)
            self._snapped = snap
        voiced = loud and self.min_f0 <= f0 <= MAX_F0
        self.shared.track(f0, level, voiced, self._position)
        if self.latency.block(loud, f0, loud and f0 >= self.min_f0 and not self._held,
                              self.pitch.early, self.pitch.since):
            self.latency.onset_at(onset)
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

    def _onset_offset(self) -> int:
        """The first sample of the last block over the gate's level (0 when none is: a slow rise)."""
        last = self.shared.latest(self.block_size)  # the block _share_input has just appended
        over = np.flatnonzero(np.abs(last) > _db(self.settings.gate_db))
        return int(over[0]) if len(over) else 0

    def _hold_onset(self, loud: bool) -> bool:
        """Keep the voice closed from an onset until the trackers know the note's pitch; True when it opens."""
        if not loud:
            if not self._held:
                self._b_hold.setValue(0.0)
                self._held = True
        elif self._held and self.pitch.known:
            self._b_hold.setValue(1.0)
            self._held = False
            return True  # the voice opens at the note's pitch, not gliding to it from the last note's
        return False

    def close(self) -> None:
        """Stop everything and let go of the shared memory (before the server goes)."""
        self._off()
        self.shared.close()
        self.frames.close()


def attach(plan: InputPlan, shared_name: str, frames_name: str, sample_rate: float, block_size: int) -> LiveInput:
    """The audio process's input, on the shared memory the control side made."""
    frames = FrameSlots.attach(frames_name, 1, plan.table_size, len(plan.noise_centres_hz))
    return LiveInput(plan, InputShared.attach(shared_name), frames, sample_rate, block_size)

