"""The timbre engine's harmonic-plus-noise voices, rendered by pyo and measured.

Every test renders real audio with pyo's manual backend and checks numbers measured on it:
harmonic levels and pitch from a windowed FFT, continuity across a frame change, the
release, and the noise bank's spectrum and level.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYO_GUI_WX", "0")

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from timbrespace.audio.additive import AdditiveSynth
from timbrespace.audio.offline import OfflineRenderer
from timbrespace.link.wavetable import harmonic_table

pytestmark = pytest.mark.numeric

SR = 48000
BS = 256
CENTRES = np.geomspace(100.0, 16000.0, 24)
F64 = npt.NDArray[np.float64]


def render(seconds: float, script: Callable[[AdditiveSynth, int], None], polyphony: int = 4) -> F64:
    """Run ``script(synth, block)`` before every block; the left channel as float64."""
    with OfflineRenderer(SR, BS, 2) as r:
        synth = AdditiveSynth(polyphony, SR, CENTRES)
        cap = r.capture(synth.output, seconds)
        for k in range(round(seconds * SR / BS)):
            script(synth, k)
            r.process_block()
        out = cap.array()[:, 0].astype(np.float64)
        cap.stop()
        synth.close()
        del synth, cap
    return out


def start(s: AdditiveSynth, slot: int, f0: float, amps: list[float], release_s: float = 0.2) -> None:
    """Start voice ``slot`` as the audio side does: from a wavetable the control side built."""
    s.voices[slot].start(slot, f0, 1.0, harmonic_table(amps, f0, SR, s.table_size), release_s)


def peak(x: F64, hz: float) -> float:
    """Amplitude of the sinusoid at ``hz`` (flat-top window: amplitude-exact within 0.01 dB)."""
    n = len(x)
    t = np.arange(n) / n
    w = 1 - 1.93 * np.cos(2 * np.pi * t) + 1.29 * np.cos(4 * np.pi * t) - 0.388 * np.cos(6 * np.pi * t) \
        + 0.028 * np.cos(8 * np.pi * t)
    mag = np.abs(np.fft.rfft(x * w)) * 2 / w.sum()
    k = round(hz * n / SR)
    return float(mag[k - 3 : k + 4].max())


def test_harmonic_table_is_the_sum_of_sines_below_nyquist() -> None:
    amps = [1.0, 0.5, 0.25, 0.125]
    t = harmonic_table(amps, 100.0, SR, 1024)
    ph = 2 * np.pi * np.arange(1024) / 1024
    assert np.allclose(t, sum(a * np.sin((k + 1) * ph) for k, a in enumerate(amps)), atol=1e-5)
    cut = harmonic_table(amps, 9000.0, SR, 1024)  # 3 * 9 kHz is above 24 kHz: two harmonics stay
    assert np.allclose(cut, np.sin(ph) + 0.5 * np.sin(2 * ph), atol=1e-5)


def test_a_note_sounds_its_harmonics_at_the_exact_pitch() -> None:
    amps = [0.2, 0.1, 0.05]
    f0 = 220.0

    def script(s: AdditiveSynth, k: int) -> None:
        if k == 0:
            start(s, 0, f0, amps)

    x = render(1.2, script)[int(0.2 * SR) :]
    for h, a in enumerate(amps, start=1):
        assert 20 * np.log10(peak(x, h * f0) / a) == pytest.approx(0.0, abs=0.1)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1 : k + 2])
    measured = (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / len(x)
    assert 1200 * np.log2(measured / f0) == pytest.approx(0.0, abs=0.5)  # cents
    assert np.isfinite(x).all() and np.abs(x).max() < 0.4


def test_a_frame_change_crossfades_without_a_click() -> None:
    f0 = 330.0

    def script(s: AdditiveSynth, k: int) -> None:
        if k == 0:
            start(s, 0, f0, [0.3])
        if k == 40:  # from a sine to its third harmonic
            s.voices[0].frame(harmonic_table([0.0, 0.0, 0.3], f0, SR, s.table_size))

    x = render(1.0, script)
    after = x[int(0.5 * SR) :]
    assert peak(after, 3 * f0) == pytest.approx(0.3, rel=0.01)
    assert peak(after, f0) < 1e-3
    # the biggest step between samples stays that of the third harmonic at full level
    steepest = 0.3 * 2 * np.pi * 3 * f0 / SR
    change = x[40 * BS - 10 : 40 * BS + 1000]
    assert np.abs(np.diff(change)).max() < 1.05 * steepest


def test_released_voices_fade_and_park() -> None:
    active: list[int] = []

    def script(s: AdditiveSynth, k: int) -> None:
        if k == 0:
            start(s, 0, 261.6, [0.3], release_s=0.1)
        if k == 50:
            s.voices[0].release()
        active.append(s.active_voices)

    x = render(1.0, script)
    assert active[10] == 1 and active[-1] == 0
    release_end = 50 * BS + int(0.1 * SR) + 2 * BS
    assert np.abs(x[release_end:]).max() == 0.0
    assert np.abs(x[50 * BS - BS : 50 * BS]).max() > 0.25


def test_noise_bands_shape_the_spectrum_and_set_the_level() -> None:
    band = 12

    def one_band(s: AdditiveSynth, k: int) -> None:
        if k == 0:
            g = np.zeros(len(CENTRES))
            g[band] = 1.0
            s.set_noise(g)

    x = render(2.0, one_band)[int(0.2 * SR) :]
    f = np.fft.rfftfreq(len(x), 1 / SR)
    p = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    lo, hi = np.sqrt(CENTRES[band - 1] * CENTRES[band]), np.sqrt(CENTRES[band] * CENTRES[band + 1])
    inside = p[(f >= lo) & (f < hi)].sum()
    assert inside > 0.6 * p.sum()  # most of the power is in the band's own neighbourhood

    def all_bands(s: AdditiveSynth, k: int) -> None:
        if k == 0:
            s.set_noise(np.ones((2, len(CENTRES))) / np.sqrt(2))  # two voices, summed in power

    y = render(2.0, all_bands)[int(0.2 * SR) :]
    span = (min(CENTRES[-1] * 1.5, SR / 2) - CENTRES[0] / 2) / (SR / 2)
    # unit-variance white noise over the bands' span (within the skirts' slack)
    assert np.var(y) == pytest.approx(span, rel=0.25)
    assert np.isfinite(y).all()
