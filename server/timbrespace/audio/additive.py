"""Harmonic-plus-noise voices in pyo for the timbre engine: one wavetable per control frame.

A frame of a sounding note is a set of harmonic amplitudes (the peaks of sinusoids at
``k * f0``) and noise band gains, as the timbre model's decoder gives them.

* Harmonics: the control side turns a frame into a single-cycle wavetable with an inverse
  FFT (:func:`~timbrespace.link.wavetable.harmonic_table`, harmonics at or above Nyquist removed for the note's pitch).
  A voice reads two tables with phase-locked ``Pointer``\\ s on one ``Phasor`` and crossfades
  from the previous frame's table to the new one over one control period, so the timbre moves
  continuously while the pitch stays exactly the phasor's frequency.  Updating a voice is a
  ~10 us copy into the idle table and one ramp: no pyo object is created after start-up.
* Noise: independent noises add in power, so one filter bank shared by all voices, whose band
  gains are the root-sum-square of the voices' gains (:meth:`AdditiveSynth.set_noise`), sounds
  like a bank per voice at 1/polyphony of the cost.  Bands are band-passes at the model's band
  centres with the bandwidth of their neighbourhood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyo

from timbrespace.audio.voice import base
from timbrespace.link.input import band_widths
from timbrespace.link.wavetable import TABLE_SIZE

F64 = npt.NDArray[np.float64]
CROSSFADE_S = 0.0116  # one frame of the model's features (256 / 22050 s)


def _write(table: pyo.DataTable, values: npt.ArrayLike) -> None:
    v = np.asarray(values, dtype=np.float32)
    if v.shape != (table.getSize(),):
        raise ValueError(f"a wavetable of {table.getSize()} samples was expected, got shape {v.shape}")
    # A numpy view of a pyo table must not outlive the server (freeing it then crashes the
    # process), not even in an exception's traceback: nothing below can raise.
    view = np.asarray(table.getBuffer())
    view[:] = v
    del view


class AdditiveVoice:
    """One note: a crossfaded pair of wavetables at ``f0`` under a release envelope."""

    def __init__(self, size: int, gain: pyo.PyoObject, on_silent: Callable[[AdditiveVoice], None]) -> None:
        self.key = -1
        self.silent = True
        self.held = False  # started and not yet released
        self.f0 = 440.0
        self._tables = (pyo.DataTable(size), pyo.DataTable(size))
        self._front = 0  # the table heard (crossfade position 0 or 1)
        self.freq = pyo.SigTo(440.0, time=0.0)
        self._phase = pyo.Phasor(self.freq)
        a, b = (pyo.Pointer(t, self._phase) for t in self._tables)
        self._xfade = pyo.SigTo(0.0, time=CROSSFADE_S)
        self.env = pyo.Adsr(attack=0.002, decay=0.001, sustain=1.0, release=0.2, mul=gain)
        self.level = pyo.SigTo(1.0, time=0.0)  # velocity
        amp = self.env * self.level
        self.out = pyo.Interp(a, b, self._xfade, mul=amp)
        self._end = pyo.TrigFunc(self.env["trig"], on_silent, arg=self)
        # Notes and frames call the C objects' setters: ~50x cheaper than pyo's Python properties,
        # and these calls run in the audio callback (voice.py does the same).  The Adsr itself
        # is never stopped as a whole: its Python-level play() also runs the end-of-release trigger.
        self._objects: list[Any] = [base(o) for o in (self.freq, self._phase, a, b, self._xfade, self.level, amp,
                                                      self.out)]
        self._b_freq, self._b_phase, self._b_xfade, self._b_level, self._b_env = (
            base(self.freq), base(self._phase), base(self._xfade), base(self.level), base(self.env))
        # the end-of-release trigger stream is the Adsr's own: played with the envelope at each note
        self._b_trig = base(self.env["trig"])
        self._stop()

    def _stop(self) -> None:
        for o in self._objects:
            o.stop()

    def start(self, key: int, f0: float, level: float, table: npt.ArrayLike, release_s: float) -> None:
        """Sound ``table`` at ``f0`` from the phase origin (an amSynth-like voice restart)."""
        self.key = key
        if self.silent:
            for o in self._objects:
                o.play()
            self._b_phase.reset()
            self.silent = False
        self.f0 = float(f0)
        self._b_freq.setTime(0.0)
        self._b_freq.setValue(self.f0)
        self._b_level.setValue(float(level))
        self._front = 0
        _write(self._tables[0], table)
        self._b_xfade.setTime(0.0)
        self._b_xfade.setValue(0.0)
        self._b_env.setRelease(float(release_s))
        self._b_env.play()
        self._b_trig.play()
        self.held = True

    def frame(self, table: npt.ArrayLike, crossfade_s: float = CROSSFADE_S) -> None:
        """Move to a new frame: fill the idle table, then crossfade to it."""
        back = 1 - self._front
        _write(self._tables[back], table)
        self._b_xfade.setTime(float(crossfade_s))
        self._b_xfade.setValue(float(back))
        self._front = back

    def glide(self, f0: float, seconds: float) -> None:
        """Move the pitch (a table built for a lower pitch may alias a little until the next frame)."""
        self.f0 = float(f0)
        self._b_freq.setTime(max(float(seconds), 0.0))
        self._b_freq.setValue(self.f0)

    def release(self) -> None:
        """Start the release; the voice parks itself when it is over."""
        self.held = False
        self._b_env.stop()  # in pyo's "wait" mode stop() starts the release

    def parked(self) -> None:
        """The release has ended (called by the synth)."""
        self.silent = True
        self.held = False
        self.key = -1
        self._stop()


_CASCADE_WIDTH = math.sqrt(math.sqrt(2.0) - 1.0)  # -3 dB width of two cascaded sections / one's


def _noise_bandwidth(centres: F64, q: F64, sr: float) -> F64:
    """Equivalent noise bandwidth (Hz) of two cascaded constant-peak band-passes (pyo's type 2)."""
    f = np.linspace(0.0, sr / 2, 1 << 16)
    z = np.exp(-1j * 2 * np.pi * f / sr)
    out = np.empty(len(centres))
    for i, (fc, qq) in enumerate(zip(centres, q, strict=True)):
        w0 = 2 * np.pi * fc / sr
        alpha = np.sin(w0) / (2 * qq)
        h = alpha * (1 - z**2) / ((1 + alpha) - 2 * np.cos(w0) * z + (1 - alpha) * z**2)
        out[i] = np.trapezoid(np.abs(h) ** 4, f)
    return out


class NoiseBank:
    """White noise through band-passes at ``centres``; one gain per band (ramped per frame)."""

    def __init__(self, centres_hz: Sequence[float], sample_rate: float, gain: pyo.PyoObject) -> None:
        c = np.asarray(centres_hz, dtype=np.float64)
        if c.ndim != 1 or len(c) < 2 or np.any(np.diff(c) <= 0) or c[0] <= 0 or c[-1] >= sample_rate / 2:
            raise ValueError(f"noise band centres must rise strictly inside (0, {sample_rate / 2:g}) Hz")
        # Each band covers half the way to its neighbours (in log frequency); two cascaded
        # band-passes (24 dB/oct skirts) with that -3 dB width keep most of a band's power in it.
        width = band_widths(c, sample_rate)
        q = c / width * _CASCADE_WIDTH
        self.centres = c
        self.gains = [pyo.SigTo(0.0, time=CROSSFADE_S) for _ in c]
        # One noise source per band, so overlapping skirts add in power, not coherently.  Each
        # band is scaled so that gain 1 passes the power of a unit-variance white noise over the
        # band's width (pyo's Noise has variance 1/3): gain 1 everywhere is unit white noise
        # over the bands' span, the level the decoder's noise magnitudes refer to.
        scale = np.sqrt(3.0 * width / _noise_bandwidth(c, q, sample_rate))
        self._noise = [pyo.Noise() for _ in c]
        for n in self._noise:
            n.setType(1)  # pyo's linear congruential generator: ~60x cheaper than rand() per sample
        self.bands = [
            pyo.Biquadx(n, freq=float(f), q=float(qq), type=2, stages=2, mul=g * float(k))
            for n, f, qq, g, k in zip(self._noise, c, q, self.gains, scale, strict=True)
        ]
        self.out = pyo.Mix(self.bands, voices=1, mul=gain)
        self._objects: list[Any] = [base(o) for o in (*self._noise, *self.gains, *self.bands, self.out)]
        self._gain_bases = [base(g) for g in self.gains]
        self.playing = True
        self.stop()

    def play(self) -> None:
        """Run the bank (a silent bank is stopped: 48 bands cost ~0.2 ms a block even at gain 0)."""
        if not self.playing:
            for o in self._objects:
                o.play()
            self.playing = True

    def stop(self) -> None:
        """Stop every object of the bank."""
        if self.playing:
            for o in self._objects:
                o.stop()
            self.playing = False

    def set_gains(self, gains: npt.ArrayLike) -> None:
        """Band gains (one per centre), reached over one control period."""
        g = np.asarray(gains, dtype=np.float64).ravel()
        if len(g) != len(self.gains):
            raise ValueError(f"expected {len(self.gains)} noise gains, got {len(g)}")
        for sig, v in zip(self._gain_bases, g.tolist(), strict=True):
            sig.setValue(v)


class AdditiveSynth:
    """``polyphony`` additive voices plus the shared noise bank, summed to ``output`` (stereo)."""

    def __init__(
        self,
        polyphony: int,
        sample_rate: float,
        noise_centres_hz: Sequence[float],
        table_size: int = TABLE_SIZE,
        channels: int = 2,
    ) -> None:
        self.sample_rate = float(sample_rate)
        self.table_size = int(table_size)
        self.gain = pyo.SigTo(1.0, time=0.02)
        self.voices = [AdditiveVoice(self.table_size, self.gain, self._on_silent) for _ in range(polyphony)]
        self.noise = NoiseBank(noise_centres_hz, self.sample_rate, self.gain)
        mono = pyo.Mix([v.out for v in self.voices] + [self.noise.out], voices=1)
        self.output = pyo.Mix(mono, voices=channels)

    def _on_silent(self, voice: AdditiveVoice) -> None:
        voice.parked()

    @property
    def active_voices(self) -> int:
        """Voices sounding or releasing."""
        return sum(not v.silent for v in self.voices)

    def set_noise(self, per_voice: npt.ArrayLike) -> None:
        """Noise band gains of the sounding notes, ``(voices, bands)``: summed in power.

        All zero stops the bank (it costs nothing then); anything else starts it.
        """
        g = np.atleast_2d(np.asarray(per_voice, dtype=np.float64))
        total = np.sqrt((g**2).sum(axis=0))
        if np.any(total > 0.0):
            self.noise.play()
        else:
            self.noise.stop()
        self.noise.set_gains(total)

    def close(self) -> None:
        """Stop everything (before the server goes)."""
        for v in self.voices:
            v.parked()
        self.output.stop()
