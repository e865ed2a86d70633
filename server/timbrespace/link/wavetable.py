"""Single-cycle wavetables from harmonic amplitudes (numpy only: the control side builds them).

The timbre engine decodes harmonic amplitudes per frame; a voice plays each frame as one cycle
of ``sum_k a_k sin(2 pi k t)``, read at the note's f0.  Harmonics at or above Nyquist for that
f0 are left out, so the table cannot alias at its own pitch.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
TABLE_SIZE = 4096  # 2047 harmonics fit; linear interpolation error ~ -100 dB for the 60th


def harmonic_tables(amps: npt.ArrayLike, f0: npt.ArrayLike, sample_rate: float, size: int = TABLE_SIZE) -> Array:
    """``(B, size)`` cycles for ``amps[B, H]`` at ``f0[B]`` Hz: one inverse FFT for the batch."""
    a = np.atleast_2d(np.asarray(amps, dtype=np.float64))
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (a.shape[0],))
    h = min(a.shape[1], size // 2 - 1)
    k = np.arange(1, h + 1)
    below = k[None, :] * f[:, None] < sample_rate / 2.0
    # complex64: the tables are float32 anyway, and single precision halves the FFT's time
    spectrum = np.zeros((a.shape[0], size // 2 + 1), dtype=np.complex64)
    # irfft's scaling: a sine of amplitude a at bin k is -1j * a * size / 2.
    spectrum[:, 1 : h + 1] = -0.5j * size * a[:, :h] * below
    return np.asarray(np.fft.irfft(spectrum, n=size, axis=1), dtype=np.float32)


def harmonic_table(amps: npt.ArrayLike, f0: float, sample_rate: float, size: int = TABLE_SIZE) -> Array:
    """One cycle of ``sum_k amps[k-1] * sin(2 pi k t)``, harmonics at or above Nyquist left out."""
    if not math.isfinite(f0):
        raise ValueError(f"f0 must be finite, got {f0}")
    tables = harmonic_tables(np.asarray(amps, dtype=np.float64).reshape(1, -1), [f0], sample_rate, size)
    return np.asarray(tables[0], dtype=np.float32)
