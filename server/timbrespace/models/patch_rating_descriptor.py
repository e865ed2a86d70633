"""What the rating head hears: the training descriptor plus the attack, fluctuation and noise it averages away.

:mod:`timbrespace.models.patch_hearing` describes a note by its time-averaged spectrum and a coarse
loudness envelope (a quarter of a second a number), enough for the proxy to train the decoder by.
The qualities Table I rates turn on more than that: hardness on the first tens of milliseconds
(how fast the note rises and what its onset sounds like), roughness on fast fluctuation within
bands (beating partials, 15-300 Hz of amplitude modulation), warmth and depth partly on how noisy
the low bands are.  The rating head (:mod:`timbrespace.models.patch_ratings`) reads this longer
descriptor; it is computed from the same render of C4, so it costs one render and a few FFTs.

The columns after the training descriptor's (all in dB, or log seconds, of the RMS-normalised note):

* attack: the level 5, 10, 20, 40, 80, 160 and 320 ms in, against the note's loudest 5 ms; the log
  time to within 6 dB of that peak and to the peak itself; the steepest 5 ms rise in the first
  300 ms; the spread of the level after 300 ms around a slow (quadratic) trend;
* modulation: in 7 octave-wide bands from 94 Hz up, the power of the band's envelope fluctuating
  at 1-8, 8-30, 30-90 and 90-180 Hz (tremolo, flutter, roughness) against its mean;
* onset spectrum: the same 7 bands' level over the first 100 ms against the whole note's;
* flatness: in 7 bands, the log ratio of the geometric to the arithmetic mean power (0 for noise,
  very negative for a few partials).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from timbrespace.models import patch_hearing

FloatArray = npt.NDArray[np.float64]
SAMPLE_RATE = patch_hearing.SAMPLE_RATE
_FLOOR = 1e-10  # -100 dB: the training descriptor's floor
_ENV_HOP = 240  # 5 ms
_ATTACK_HOPS = (1, 2, 4, 8, 16, 32, 64)  # 5 ms to 320 ms
_SETTLED = 60  # hops: after 300 ms the note is past its attack
_MOD_FFT, _MOD_HOP = 512, 128  # band envelopes at 375 Hz: modulation up to 187 Hz
_BAND_EDGES = (1, 3, 6, 12, 24, 48, 96, 257)  # rfft bins of _MOD_FFT: 94 Hz and up, in octaves
_MOD_RANGES = ((1.0, 8.0), (8.0, 30.0), (30.0, 90.0), (90.0, 180.0))
_ONSET = 0.1  # seconds
_FLAT_FFT = patch_hearing.N_FFT
_FLAT_EDGES = (2, 12, 24, 48, 96, 192, 384, 1025)  # rfft bins of _FLAT_FFT: 47 Hz to 24 kHz
N_BANDS = len(_BAND_EDGES) - 1
N_EXTRA = len(_ATTACK_HOPS) + 4 + N_BANDS * len(_MOD_RANGES) + N_BANDS + len(_FLAT_EDGES) - 1
N_FEATURES = patch_hearing.N_FEATURES + N_EXTRA
#: Each column's name, in order (bands by their lowest frequency).
NAMES: tuple[str, ...] = (
    *(f"logmel_{k}" for k in range(patch_hearing.N_MELS)),
    *(f"envelope_{k}" for k in range(patch_hearing.ENV_SEGMENTS)),
    *(f"attack_{5 * k}ms" for k in _ATTACK_HOPS), "attack_log_s_to_6db", "attack_log_s_to_peak", "attack_steepest_db",
    "sustain_spread_db",
    *(f"modulation_{round(lo * SAMPLE_RATE / _MOD_FFT)}hz_{f0:g}-{f1:g}hz" for lo in _BAND_EDGES[:-1]
      for f0, f1 in _MOD_RANGES),
    *(f"onset_{round(lo * SAMPLE_RATE / _MOD_FFT)}hz" for lo in _BAND_EDGES[:-1]),
    *(f"flatness_{round(lo * SAMPLE_RATE / _FLAT_FFT)}hz" for lo in _FLAT_EDGES[:-1]),
)
#: What the hearing cache keys these descriptors by (a change of columns must change it).
CACHE_TAG = f"rating-descriptor/1/{N_FEATURES}"
MIN_SECONDS = 0.5  # the attack columns reach 320 ms, and the fluctuation needs some sustain after 300 ms


def _db(x: npt.ArrayLike) -> FloatArray:
    result: FloatArray = 10.0 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), _FLOOR))
    return result


def _attack(a: FloatArray) -> list[float]:
    n = len(a) // _ENV_HOP
    env = _db((a[: n * _ENV_HOP].reshape(n, _ENV_HOP) ** 2).mean(axis=1))
    peak = float(env.max())
    levels = [float(env[k]) - peak for k in _ATTACK_HOPS]
    near = int(np.argmax(env >= peak - 6.0))  # the first hop within 6 dB of the peak
    hop_s = _ENV_HOP / SAMPLE_RATE
    late = env[_SETTLED:]
    x = np.arange(len(late), dtype=np.float64)
    trend = np.polyval(np.polyfit(x, late, 2), x)
    return [*levels, float(np.log(hop_s * (near + 1))), float(np.log(hop_s * (int(np.argmax(env)) + 1))),
            float(np.max(np.diff(env[: _SETTLED + 1]))), float(np.std(late - trend))]


def _bands(a: FloatArray) -> tuple[list[float], list[float]]:
    count = (len(a) - _MOD_FFT) // _MOD_HOP
    frames = a[np.arange(_MOD_FFT)[None, :] + _MOD_HOP * np.arange(count)[:, None]] * np.hanning(_MOD_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    rate = SAMPLE_RATE / _MOD_HOP
    settled = power[int(0.3 * rate) :]
    onset, whole = power[: int(_ONSET * rate)].mean(axis=0), power.mean(axis=0)
    mods: list[float] = []
    early: list[float] = []
    for lo, hi in itertools.pairwise(_BAND_EDGES):
        e = settled[:, lo:hi].sum(axis=1)
        e = e / max(float(e.mean()), _FLOOR) - 1.0
        spectrum = np.abs(np.fft.rfft(e * np.hanning(len(e)))) ** 2 / len(e)
        freq = np.fft.rfftfreq(len(e), 1.0 / rate)
        mods += [float(_db(spectrum[(freq >= f0) & (freq < f1)].sum())) for f0, f1 in _MOD_RANGES]
        early.append(float(_db(onset[lo:hi].sum()) - _db(whole[lo:hi].sum())))
    return mods, early


def _flatness(a: FloatArray) -> list[float]:
    frames = a[: len(a) // _FLAT_FFT * _FLAT_FFT].reshape(-1, _FLAT_FFT) * np.hanning(_FLAT_FFT)
    p = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + _FLOOR
    return [float(np.mean(np.log(p[lo:hi])) - np.log(np.mean(p[lo:hi])))
            for lo, hi in itertools.pairwise(_FLAT_EDGES)]


def describe(audio: npt.ArrayLike) -> FloatArray | None:
    """The rating descriptor ``(N_FEATURES,)`` of mono ``audio`` at :data:`SAMPLE_RATE`: the training
    descriptor, then the columns above; None when silent or not finite."""
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim != 1 or len(a) < MIN_SECONDS * SAMPLE_RATE:
        raise ValueError(f"expected mono audio of at least {MIN_SECONDS} s ({int(MIN_SECONDS * SAMPLE_RATE)} "
                         f"samples), got shape {a.shape}")
    base = patch_hearing.describe(a)
    if base is None:
        return None
    a = a * (patch_hearing.TARGET_RMS / float(np.sqrt(np.mean(a**2))))
    mods, early = _bands(a)
    return np.concatenate([base, _attack(a), mods, early, _flatness(a)])


def hear(values: npt.ArrayLike, renderer: str = "amsynth",
         progress: Callable[[int], None] | None = None) -> FloatArray:
    """Rating descriptors ``(N, N_FEATURES)`` of patches ``(N, 41)`` (C4, as the hearing plays it); rows
    that render silence are NaN."""
    return patch_hearing.hear(values, renderer, progress, describe, N_FEATURES)
