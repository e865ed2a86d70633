"""What rooms and microphones do to a note, applied to rendered notes (issue 17).

A SoundFont's notes are dry, close and clean; a performer's microphone hears a room, a tilted
frequency response, a noise floor and, over a network or from a phone, a band limit. Each
augmented copy of a training note draws one such chain, seeded by the copy's file name (the same
set on every machine), and the manifest records what was drawn. The labels stay exact: a chain
never moves the pitch by more than :data:`MAX_DETUNE_CENTS` (the data's pitch claim is 25 cents)
and never changes the instrument.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal

from timbrespace.data.wav import FloatArray

F64 = npt.NDArray[np.float64]

#: Detuning at most, in cents: within the 25 cents a pitch label claims.
MAX_DETUNE_CENTS = 15.0
#: Rooms by their reverberation time (RT60, seconds): a booth, a living room, a hall.
ROOMS_S = (0.25, 0.6, 1.4)
#: Band limits (Hz) of low-bitrate codecs and small speakers, at the data's 22,050 Hz rate.
BAND_LIMITS_HZ = (3400.0, 5500.0, 8000.0)
#: The peak an augmented note is scaled under, if it went over (gain is a label of nothing).
PEAK = 0.95


@dataclass(frozen=True)
class Chain:
    """One draw: every parameter, 0 where that effect is off."""

    gain_db: float
    tilt_db_per_octave: float
    detune_cents: float
    room_rt60_s: float
    room_wet: float
    noise_dbfs: float  # the noise floor's RMS; -inf: none
    lowpass_hz: float

    def to_dict(self) -> dict[str, float]:
        """Plain numbers for the manifest (no noise: -120 dBFS, JSON has no -inf)."""
        d = asdict(self)
        if not math.isfinite(d["noise_dbfs"]):
            d["noise_dbfs"] = -120.0
        return d


def draw(key: str, seed: int = 0) -> Chain:
    """The chain of the copy named ``key`` (its file name): seeded by the name, not by the order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    room = rng.random() < 0.7
    noisy = rng.random() < 0.6
    limited = rng.random() < 0.4
    return Chain(
        gain_db=float(rng.uniform(-12.0, 3.0)),
        tilt_db_per_octave=float(rng.uniform(-3.0, 3.0)),
        detune_cents=float(rng.uniform(-MAX_DETUNE_CENTS, MAX_DETUNE_CENTS)),
        room_rt60_s=float(rng.choice(ROOMS_S) * rng.uniform(0.8, 1.25)) if room else 0.0,
        room_wet=float(rng.uniform(0.15, 0.6)) if room else 0.0,
        noise_dbfs=float(rng.uniform(-70.0, -45.0)) if noisy else -math.inf,
        lowpass_hz=float(rng.choice(BAND_LIMITS_HZ)) if limited else 0.0,
    )


def apply(audio: FloatArray, sr: int, chain: Chain, key: str, seed: int = 0) -> FloatArray:
    """``audio`` through ``chain``: same length, float32, peak at most :data:`PEAK`."""
    digest = hashlib.sha256(f"noise:{seed}:{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    n = len(audio)
    x: F64 = np.asarray(audio, np.float64)
    if chain.detune_cents:
        x = _detune(x, chain.detune_cents)
        x = x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))  # the note's length kept
    if chain.tilt_db_per_octave:
        x = _tilt(x, sr, chain.tilt_db_per_octave)
    if chain.room_rt60_s > 0.0:
        x = _room(x, sr, chain.room_rt60_s, chain.room_wet, rng)
    x = x * 10.0 ** (chain.gain_db / 20.0)
    if math.isfinite(chain.noise_dbfs):
        x = x + _pink(n, rng) * 10.0 ** (chain.noise_dbfs / 20.0)
    if chain.lowpass_hz:
        sos = signal.butter(8, chain.lowpass_hz, "lowpass", fs=sr, output="sos")
        x = np.asarray(signal.sosfiltfilt(sos, x), np.float64)
    top = float(np.max(np.abs(x))) if n else 0.0
    if top > PEAK:
        x = x * (PEAK / top)
    return x.astype(np.float32)


def _detune(x: F64, cents: float) -> F64:
    """Played faster or slower by ``cents`` (pitch and duration together, as a tape or a resampler)."""
    ratio = 2.0 ** (cents / 1200.0)
    positions = np.arange(0.0, len(x) - 1, ratio)
    out: F64 = np.interp(positions, np.arange(len(x)), x)
    return out


def _tilt(x: F64, sr: int, db_per_octave: float) -> F64:
    """A microphone's or a room's slope: ``db_per_octave`` about 1 kHz, flat below 50 Hz."""
    spectrum = np.fft.rfft(x)
    f = np.maximum(np.fft.rfftfreq(len(x), 1.0 / sr), 50.0)
    gain = 10.0 ** (db_per_octave * np.log2(f / 1000.0) / 20.0)
    out: F64 = np.fft.irfft(spectrum * gain, len(x))
    return out


def _room(x: F64, sr: int, rt60: float, wet: float, rng: np.random.Generator) -> F64:
    """A synthetic room: a few early reflections, then exponentially decaying noise (RT60)."""
    length = int(rt60 * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9078 * t / rt60)  # -60 dB at rt60
    for delay_ms in rng.uniform(3.0, 30.0, size=4):
        k = int(delay_ms * sr / 1000.0)
        if k < length:
            tail[k] += rng.uniform(0.3, 0.7) * (1 if rng.random() < 0.5 else -1) * length ** 0.5 / 20.0
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    reverberant = np.asarray(signal.fftconvolve(x, tail)[: len(x)], np.float64)
    scale = np.sqrt(np.sum(x**2)) / (np.sqrt(np.sum(reverberant**2)) + 1e-12)  # the wet part as loud as the dry
    out: F64 = (1.0 - wet) * x + wet * reverberant * scale
    return out


def _pink(n: int, rng: np.random.Generator) -> F64:
    """Pink noise (1/f power) of unit RMS."""
    white = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(white), dtype=np.float64)
    f[0] = 1.0
    pink: F64 = np.fft.irfft(white / np.sqrt(f), n)
    out: F64 = pink / (np.sqrt(np.mean(pink**2)) + 1e-12)
    return out
