"""Patches heard: amSynth renders a patch (C4, held), RMS-normalised, rated and described.

The evaluation of the patch map plays every patch the same way the paper does (Peachey, Oore and
Malloch: C4, 4 s, constant loudness) through the real amSynth (the fidelity module's headless
DSSI worker), then rates it with the AudioCommons timbral models and takes its mean log-mel
spectrum (for the path smoothness measure).  :class:`Listener` caches by patch, because the same
patch recurs (a path's ends are the presets a table already rated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.evaluate.timbral import QUALITIES, rate
from timbrespace.fidelity import reference
from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]
C4 = 60
SAMPLE_RATE = 48000
TARGET_RMS = 0.1  # -20 dBFS: the models loudness-normalise anyway; this keeps renders comparable
SILENCE_RMS = 1e-5  # below this (-100 dBFS) a render is silence: nothing to rate
N_MELS = 64


@dataclass(frozen=True)
class Heard:
    """One patch's rendering, described: ``ratings`` in QUALITIES order, ``logmel`` (dB, time-mean)."""

    ratings: FloatArray  # (7,)
    logmel: FloatArray  # (N_MELS,)


def render(values: npt.ArrayLike, duration: float) -> FloatArray | None:
    """Mono C4 held for ``duration`` s at velocity 100, RMS-normalised; None when silent or not finite."""
    out = reference.render(params.clamp_vector(np.asarray(values, dtype=np.float64)), [(0.0, None, C4, 100)],
                           duration, sample_rate=SAMPLE_RATE)
    mono = np.asarray(out, dtype=np.float64).mean(axis=1)
    if not np.all(np.isfinite(mono)):
        return None
    rms = float(np.sqrt(np.mean(mono**2)))
    if rms < SILENCE_RMS:
        return None
    normalised: FloatArray = mono * (TARGET_RMS / rms)
    return normalised


def mean_logmel(audio: FloatArray, sample_rate: int = SAMPLE_RATE) -> FloatArray:
    """The time-averaged log-mel spectrum (dB re full-scale power), ``(N_MELS,)``."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=sample_rate, n_fft=2048, hop_length=512,
                                         n_mels=N_MELS, fmax=sample_rate / 2)
    # A fixed floor (-100 dB), not one relative to the loudest bin, so two renders share one scale.
    result: FloatArray = 10.0 * np.log10(np.maximum(mel.mean(axis=1), 1e-10)).astype(np.float64)
    return result


def cannot_rate() -> str | None:
    """Why patches cannot be heard and rated here (amSynth's plugin or the timbral models missing), or None."""
    from timbrespace.evaluate import timbral

    if not reference.available():
        return f"amSynth's DSSI plugin {reference.PLUGIN} is not installed (apt-get install amsynth)"
    if not timbral.available():
        return "the AudioCommons timbral models are not installed: pip install --no-deps timbral_models==0.4.0"
    return None


class Listener:
    """Renders, rates and describes patches, once per distinct patch (values as amSynth loads them)."""

    def __init__(self, duration: float, progress: Callable[[], None] | None = None) -> None:
        if not duration > 0:
            raise ValueError(f"duration must be positive, got {duration}")
        self.duration = float(duration)
        self.progress = progress
        self._cache: dict[bytes, Heard | None] = {}
        self.renders = 0

    def hear(self, values: npt.ArrayLike) -> Heard | None:
        """The patch's ratings and log-mel, or None when it renders silence or NaN."""
        v = params.clamp_vector(np.asarray(values, dtype=np.float64))
        key = v.tobytes()
        if key not in self._cache:
            audio = render(v, self.duration)
            self.renders += 1
            heard = None
            if audio is not None:
                r = rate(audio, SAMPLE_RATE)
                heard = Heard(np.array([r[q] for q in QUALITIES]), mean_logmel(audio))
            self._cache[key] = heard
            if self.progress is not None:
                self.progress()
        return self._cache[key]

    def hear_all(self, values: npt.ArrayLike) -> list[Heard | None]:
        """:meth:`hear` for each row of ``values`` ``(N, 41)``."""
        return [self.hear(v) for v in np.asarray(values, dtype=np.float64)]
