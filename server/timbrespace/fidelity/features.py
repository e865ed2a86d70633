"""Audio features for comparing two renders of one patch: log-mel, RMS envelope, centroid, f0.

All take mono or ``(n, channels)`` float arrays (channels are averaged) at one
sample rate.  Levels are absolute (dB re full scale), so a render that is right
in timbre but wrong in level counts as different, as a listener would hear it.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
N_FFT, HOP, N_MELS = 2048, 512, 64
FLOOR_DB = -80.0  # below this, detail is inaudible under anything else playing: clip it away
QUIET_DB = -50.0  # RMS envelope frames under this (on both sides) are left out of level errors


def mono(x: npt.ArrayLike) -> Array:
    """Channels averaged, float64; non-finite samples (a filter that blew up) count as silence."""
    a = np.asarray(x, dtype=np.float64)
    m = a.mean(axis=1) if a.ndim == 2 else a
    return m if np.isfinite(m).all() else np.where(np.isfinite(m), m, 0.0)


def logmel(x: npt.ArrayLike, sample_rate: int = 48000) -> npt.NDArray[np.float32]:
    """Log-mel power spectrogram ``(N_MELS, frames)`` in dB re full scale, floored at FLOOR_DB."""
    mel = librosa.feature.melspectrogram(
        y=mono(x), sr=sample_rate, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmax=sample_rate / 2, power=2.0,
    )
    # A full-scale sine gives ~(N_FFT/4)^2 in a Hann-windowed power bin: normalise so 0 dB ~ full scale.
    db = 10.0 * np.log10(mel / (N_FFT / 4) ** 2 + 1e-12)
    return np.maximum(db, FLOOR_DB).astype(np.float32)


def logmel_distance(a: npt.ArrayLike, b: npt.ArrayLike, sample_rate: int = 48000) -> float:
    """RMS difference of two renders' log-mel spectrograms (dB), over their common frames."""
    return logmel_feature_distance(logmel(a, sample_rate), logmel(b, sample_rate))


def logmel_feature_distance(fa: npt.NDArray[np.floating], fb: npt.NDArray[np.floating]) -> float:
    """RMS difference (dB) of two log-mel spectrograms, over their common frames."""
    n = min(fa.shape[1], fb.shape[1])
    d = fa[:, :n].astype(np.float64) - fb[:, :n]
    return float(np.sqrt((d**2).mean()))


def rms_db(x: npt.ArrayLike, sample_rate: int = 48000, hop_s: float = 0.005) -> Array:
    """RMS envelope in dB re full scale, in windows of ``hop_s`` (default 5 ms)."""
    m = mono(x)
    hop = max(1, round(hop_s * sample_rate))
    n = len(m) // hop * hop
    r = np.sqrt((m[:n].reshape(-1, hop) ** 2).mean(axis=1))
    return np.asarray(20.0 * np.log10(r + 1e-10), dtype=np.float64)


@dataclass(frozen=True)
class EnvelopeTimes:
    """Timing of one note's RMS envelope (seconds; NaN where the note never got there)."""

    attack: float  # onset (10% of peak amplitude) to 90% of peak
    decay: float  # peak to 90% of the way down to the level at note-off
    release: float  # note-off to 20 dB below the level at note-off
    peak_db: float
    sustain_db: float  # level just before note-off


def sliding_rms(x: npt.ArrayLike, sample_rate: int = 48000, window_s: float = 0.02, hop_s: float = 0.002) -> Array:
    """RMS over ``window_s`` windows centred every ``hop_s`` (long enough to hold a few periods)."""
    m = mono(x)
    w, hop = max(1, round(window_s * sample_rate)), max(1, round(hop_s * sample_rate))
    c = np.concatenate([[0.0], np.cumsum(np.pad(m, (w // 2, w - w // 2)) ** 2)])
    centres = np.arange(0, len(m), hop)
    return np.asarray(np.sqrt(np.maximum(c[centres + w] - c[centres], 0.0) / w), dtype=np.float64)


def envelope_times(x: npt.ArrayLike, t_on: float, t_off: float, sample_rate: int = 48000,
                   hop_s: float = 0.002) -> EnvelopeTimes:
    """Attack, decay and release times of a single note played from ``t_on`` to ``t_off``.

    Timings come from a 20 ms sliding RMS, so they are only meaningful above ~20 ms.
    """
    env = sliding_rms(x, sample_rate, 0.02, hop_s)
    i_on, i_off = round(t_on / hop_s), min(round(t_off / hop_s), len(env) - 1)
    held = env[i_on:i_off]
    nan = float("nan")
    if len(held) < 2 or held.max() < 1e-5:
        return EnvelopeTimes(nan, nan, nan, -200.0, -200.0)
    k_peak = int(np.argmax(held))
    peak = float(held[k_peak])
    k10 = int(np.argmax(held >= 0.1 * peak))
    k90 = int(np.argmax(held >= 0.9 * peak))
    sustain = float(np.median(held[max(k_peak, len(held) - 5):])) if len(held) > k_peak + 1 else peak
    decay = nan
    if peak > 1.41 * sustain:  # 3 dB: smaller bumps are beating between the oscillators, not a decay
        below = np.flatnonzero(held[k_peak:] <= sustain + 0.1 * (peak - sustain))
        decay = float(below[0] * hop_s) if len(below) else nan
    after = env[i_off:]
    gone = np.flatnonzero(after <= 0.1 * max(sustain, 1e-6))
    release = float(gone[0] * hop_s) if len(gone) else nan
    return EnvelopeTimes((k90 - k10) * hop_s, decay, release, _db(peak), _db(sustain))


def _db(v: float) -> float:
    return float(20.0 * np.log10(v + 1e-10))


def centroid(x: npt.ArrayLike, sample_rate: int = 48000) -> Array:
    """Spectral centroid per frame (Hz; NaN in frames quieter than QUIET_DB)."""
    m = mono(x)
    c = librosa.feature.spectral_centroid(y=m, sr=sample_rate, n_fft=N_FFT, hop_length=HOP)[0]
    level = librosa.feature.rms(y=m, frame_length=N_FFT, hop_length=HOP)[0]
    n = min(len(c), len(level))
    return np.where(20.0 * np.log10(level[:n] + 1e-10) > QUIET_DB, c[:n], np.nan).astype(np.float64)


def f0(x: npt.ArrayLike, sample_rate: int = 48000, fmin: float = 50.0, fmax: float = 2000.0) -> float:
    """Median fundamental frequency (Hz; YIN over loud frames; NaN when silent)."""
    m = mono(x)
    if len(m) < N_FFT:
        return float("nan")
    track = librosa.yin(m, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=N_FFT, hop_length=HOP)
    level = librosa.feature.rms(y=m, frame_length=N_FFT, hop_length=HOP)[0]
    n = min(len(track), len(level))
    loud = 20.0 * np.log10(level[:n] + 1e-10) > QUIET_DB
    return float(np.median(track[:n][loud])) if loud.any() else float("nan")


def envelope_error_db(a: npt.ArrayLike, b: npt.ArrayLike, sample_rate: int = 48000, hop_s: float = 0.05) -> float:
    """Mean absolute difference (dB) of two RMS envelopes over frames where either is audible."""
    ea, eb = rms_db(a, sample_rate, hop_s), rms_db(b, sample_rate, hop_s)
    n = min(len(ea), len(eb))
    ea, eb = ea[:n], eb[:n]
    loud = (ea > QUIET_DB) | (eb > QUIET_DB)
    if not loud.any():
        return 0.0
    return float(np.abs(np.maximum(ea, QUIET_DB - 10)[loud] - np.maximum(eb, QUIET_DB - 10)[loud]).mean())


def centroid_error_octaves(a: npt.ArrayLike, b: npt.ArrayLike, sample_rate: int = 48000) -> float:
    """Median |log2| ratio of two centroid trajectories over frames audible in both (octaves)."""
    ca, cb = centroid(a, sample_rate), centroid(b, sample_rate)
    n = min(len(ca), len(cb))
    both = np.isfinite(ca[:n]) & np.isfinite(cb[:n]) & (ca[:n] > 0) & (cb[:n] > 0)
    if not both.any():
        return float("nan")
    return float(np.median(np.abs(np.log2(ca[:n][both] / cb[:n][both]))))
