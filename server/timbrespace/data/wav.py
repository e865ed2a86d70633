"""16-bit mono WAV encoding for the data sets, byte-for-byte reproducible."""

from __future__ import annotations

import io
import wave

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def peak(audio: FloatArray) -> float:
    """Largest absolute sample value (0.0 for an empty signal)."""
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def dbfs(level: float) -> float:
    """A linear level in dB relative to full scale (-inf for silence)."""
    return float(20.0 * np.log10(level)) if level > 0 else float("-inf")


def encode_pcm16(audio: FloatArray, sample_rate: int) -> bytes:
    """Mono float audio in [-1, 1] as the bytes of a 16-bit PCM WAV file.

    Rounds to nearest with no dither, so equal input gives equal bytes. Callers check for clipping
    first; the clip here only guards the int16 conversion.
    """
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def read_pcm16(data: bytes) -> tuple[FloatArray, int]:
    """Decode what :func:`encode_pcm16` wrote: (float audio, sample rate)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError("expected a mono 16-bit WAV")
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return (pcm.astype(np.float32) / np.float32(32767.0)), rate
