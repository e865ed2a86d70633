"""Wavetables for amSynth's oscillators and LFO, written in place into pyo tables.

amSynth's oscillator shapes (``Oscillator.cpp``), per phase ``t`` in [0, 1):

* sine: ``sin(2 pi t)``;
* pulse: +1 while ``t`` is below the duty cycle ``(1 + min(pw, 0.9)) / 2``, else -1
  (pw 0 is a square);
* saw: amSynth's variable-slope saw, ``a = (pw + 1) / 2``: rising ``2t/a`` up to
  ``t = a/2``, falling ``(1 - 2t)/(1 - a)`` to ``t = 1 - a/2``, rising again;
  pw 0 is a triangle, pw 1 a rising saw.

amSynth computes its pulse edges exactly where they fall between two samples
(the sample is the average of the waveform over the sample interval) and
narrows the saw's falling edge to about one sample.  Both amount to a box filter
over one sample, so the voice reads an *integrated* table ``F(t) = int_0^t (w - mean)``
and outputs ``(F(t_n) - F(t_n - dt)) / dt + mean``: the waveform averaged over the
last phase increment ``dt = f / sr``.  That matches amSynth's harmonics within
~0.1 dB (a naive table read is 1-3 dB too bright and aliases more).

The LFO's shapes reuse these (VoiceBoard.cpp): square is a pulse with pw 0,
triangle a saw with pw 0, saw up/down a saw with pw 1 times +1/-1; the LFO reads
them directly.  Noise and sample-and-hold are not periodic shapes: their tables
are silent and the voice plays a noise source instead.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyo

TABLE_SIZE = 4096
PHASE_TABLE_SIZE = 65536  # read without interpolation: phase quantised to 1.5e-5 of a cycle

# amSynth's oscillator waveform values (osc1_waveform / osc2_waveform).
OSC_SINE, OSC_PULSE, OSC_SAW, OSC_NOISE, OSC_SAMPLE_HOLD = range(5)
# amSynth's LFO waveform values (lfo_waveform).
LFO_SINE, LFO_SQUARE, LFO_TRIANGLE, LFO_NOISE, LFO_SAMPLE_HOLD, LFO_SAW_UP, LFO_SAW_DOWN = range(7)

Array = npt.NDArray[np.float64]

_PHASE: Array = np.arange(TABLE_SIZE, dtype=np.float64) / TABLE_SIZE
_REST: Array = 1.0 - _PHASE
_PHASE_SQ: Array = _PHASE**2
_REST_SQ: Array = _REST**2
_PHASE_MINUS_SQ: Array = _PHASE - _PHASE_SQ
_SINE_INTEGRAL: Array = (1.0 - np.cos(2.0 * np.pi * _PHASE)) / (2.0 * np.pi)


def sine() -> Array:
    """One cycle of a sine starting at phase 0 (amSynth's ``doSine``)."""
    return np.sin(2.0 * np.pi * _PHASE)


def pulse(pw: float) -> Array:
    """amSynth's pulse: +1 for the first ``(1 + min(pw, 0.9)) / 2`` of the cycle, then -1."""
    duty = 0.5 * (1.0 + min(max(pw, 0.0), 0.9))
    # Sample the edge at its exact position (like amSynth's crossing-point estimate) so a
    # slowly moving width changes the table smoothly instead of in whole-sample steps.
    edges = np.clip((duty - _PHASE) * TABLE_SIZE, 0.0, 1.0)
    return 2.0 * edges - 1.0


def saw(pw: float) -> Array:
    """amSynth's variable-slope saw: pw 0 a triangle, pw 1 a rising saw."""
    a = 0.5 * (min(max(pw, 0.0), 1.0) + 1.0)
    t = _PHASE
    rise = 2.0 * t / a
    wrap = (2.0 * t - 2.0) / a
    # 1 - a is 0 for a pure saw; the middle segment is then empty, so guard the division.
    fall = (1.0 - 2.0 * t) / max(1.0 - a, 1e-12)
    return np.where(t < a / 2.0, rise, np.where(t > 1.0 - a / 2.0, wrap, fall))


def osc_shape(waveform: int, pw: float) -> Array:
    """The waveform itself (for plots and tests); noise and sample-and-hold give silence."""
    if waveform == OSC_SINE:
        return sine()
    if waveform == OSC_PULSE:
        return pulse(pw)
    if waveform == OSC_SAW:
        return saw(pw)
    return np.zeros(TABLE_SIZE)


def osc_integral(waveform: int, pw: float) -> tuple[Array, float]:
    """``(F, mean)``: the exact integral of the waveform minus its mean, and the mean.

    ``F(0) = F(1) = 0``, so reading it with a wrapping phase needs no correction.
    Noise and sample-and-hold give ``(zeros, 0)``.  A few us: scaled slices of
    precomputed arrays, since pulse widths may change every block.
    """
    out = np.zeros(TABLE_SIZE)
    if waveform == OSC_SINE:
        out[:] = _SINE_INTEGRAL
        return out, 0.0
    if waveform == OSC_PULSE:
        duty = 0.5 * (1.0 + min(max(pw, 0.0), 0.9))
        mean = 2.0 * duty - 1.0
        k = int(np.ceil(duty * TABLE_SIZE))
        # slope 1 - mean up to the edge, then -1 - mean back down to 0 at t = 1
        np.multiply(_PHASE[:k], 1.0 - mean, out=out[:k])
        np.multiply(_REST[k:], 1.0 + mean, out=out[k:])
        return out, mean
    if waveform == OSC_SAW:
        a = 0.5 * (min(max(pw, 0.0), 1.0) + 1.0)
        k1 = int(np.ceil(a / 2.0 * TABLE_SIZE))
        # the falling middle segment is empty for a pure saw (a = 1)
        k2 = k1 if a >= 1.0 - 1e-9 else max(k1, int(np.floor((1.0 - a / 2.0) * TABLE_SIZE)) + 1)
        np.multiply(_PHASE_SQ[:k1], 1.0 / a, out=out[:k1])  # t^2 / a
        if k2 > k1:  # a/4 + ((t - t^2) - (a/2 - a^2/4)) / (1 - a)
            np.multiply(_PHASE_MINUS_SQ[k1:k2] - (a / 2.0 - a * a / 4.0), 1.0 / (1.0 - a), out=out[k1:k2])
            out[k1:k2] += a / 4.0
        np.multiply(_REST_SQ[k2:], 1.0 / a, out=out[k2:])  # (1 - t)^2 / a
        return out, 0.0
    return out, 0.0


def lfo_shape(waveform: int) -> Array:
    """The table of an LFO waveform; noise and sample-and-hold give silence."""
    if waveform == LFO_SINE:
        return sine()
    if waveform == LFO_SQUARE:
        return pulse(0.0)
    if waveform == LFO_TRIANGLE:
        return saw(0.0)
    if waveform == LFO_SAW_UP:
        return saw(1.0)
    if waveform == LFO_SAW_DOWN:
        return -saw(1.0)
    return np.zeros(TABLE_SIZE)


def new_table(size: int = TABLE_SIZE) -> pyo.DataTable:
    """An empty wavetable (allocate once, outside the audio thread)."""
    return pyo.DataTable(size=size)


def phase_table(size: int = PHASE_TABLE_SIZE) -> pyo.DataTable:
    """The identity ramp ``k / size``: an ``OscTrig`` reading it is a resettable phasor."""
    table = pyo.DataTable(size=size)
    write(table, np.arange(size, dtype=np.float64) / size)
    return table


def write(table: pyo.DataTable, shape: Array) -> None:
    """Copy ``shape`` into ``table``'s memory in place (no pyo allocation, ~10 us).

    The numpy view is dropped at once: a view that outlives the pyo server crashes
    the process when it is freed.
    """
    view = np.asarray(table.getBuffer())
    view[:] = shape
    del view
