"""Patches heard cheaply, for training: a render of C4 reduced to a short sound descriptor.

The patch map's measure (``timbrespace eval patch-vae``) plays C4 through amSynth and rates it with
the AudioCommons timbral models, which cost seconds a patch.  Training can afford a render but not a
rating, so it hears a patch as :data:`N_FEATURES` numbers: the time-averaged log-mel spectrum of the
RMS-normalised note (what the eval's path measure also uses; brightness, warmth, depth, boominess
and sharpness are functions of the spectrum) and its loudness envelope in dB (hardness is about the
attack, roughness partly about fluctuation).

The real amSynth (``fidelity.reference``, its DSSI plugin in a worker) renders a second of sound in
a few milliseconds, ten times faster than the project's pyo voice, and is the instrument the eval
plays, so it is the default; ``voice`` hears through the project's own voice instead, for machines
without the plugin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]
C4 = 60
SAMPLE_RATE = 48000
DURATION = 2.0  # seconds of C4: the attack, the decay and most of a sustain
N_MELS = 48
N_FFT = 2048
ENV_SEGMENTS = 8  # loudness envelope: mean power in dB over 8 equal parts of the note
N_FEATURES = N_MELS + ENV_SEGMENTS
TARGET_RMS = 0.1
SILENCE_RMS = 1e-5
FLOOR_DB = -100.0
RENDERERS = ("amsynth", "voice")


class HearingError(RuntimeError):
    """What hears the training presets cannot run here (its renderer is not installed)."""


def player(name: str) -> Callable[[FloatArray], FloatArray]:
    """A function from a patch (41 values) to mono audio at :data:`SAMPLE_RATE`."""
    if name == "amsynth":
        from timbrespace.fidelity import reference

        if not reference.available():
            raise HearingError(f"renderer 'amsynth': amSynth's DSSI plugin is not installed at {reference.PLUGIN}; "
                               "expected it there (Debian: apt-get install amsynth), or use renderer 'voice' "
                               "(--renderer voice), or train without hearing (--sound-weight 0)")

        def play(v: FloatArray) -> FloatArray:
            out = reference.render(v, [(0.0, None, C4, 100)], DURATION, sample_rate=SAMPLE_RATE)
            mono: FloatArray = np.asarray(out, dtype=np.float64).mean(axis=1)
            return mono

        return play
    if name == "voice":
        from timbrespace.audio.offline import render_patch

        def voice(v: FloatArray) -> FloatArray:
            out = render_patch(v, notes=((0.0, None, C4, 100),), duration=DURATION, sample_rate=SAMPLE_RATE,
                               polyphony=1)
            mono: FloatArray = np.asarray(out, dtype=np.float64).mean(axis=1)
            return mono

        return voice
    raise ValueError(f"unknown renderer {name!r}; expected one of {', '.join(RENDERERS)}")


@functools.cache
def _mel_filters(sample_rate: int) -> FloatArray:
    import librosa

    fb: FloatArray = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=N_MELS, fmax=sample_rate / 2)
    return fb.astype(np.float64)


def describe(audio: npt.ArrayLike, sample_rate: int = SAMPLE_RATE) -> FloatArray | None:
    """The descriptor of mono ``audio``: log-mel (dB) then envelope (dB); None when silent or not finite.

    The spectrum is the mean power of non-overlapping Hann frames (Welch's estimate): for a time
    average, overlap adds cost and no information worth it.
    """
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim != 1 or len(a) < N_FFT:
        raise ValueError(f"expected mono audio of at least {N_FFT} samples, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        return None
    rms = float(np.sqrt(np.mean(a**2)))
    if rms < SILENCE_RMS:
        return None
    a = a * (TARGET_RMS / rms)
    frames = a[: len(a) // N_FFT * N_FFT].reshape(-1, N_FFT) * np.hanning(N_FFT)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    floor = 10.0 ** (FLOOR_DB / 10.0)
    logmel = 10.0 * np.log10(np.maximum(_mel_filters(sample_rate) @ power, floor))
    parts = np.array_split(a**2, ENV_SEGMENTS)
    env = 10.0 * np.log10(np.maximum([p.mean() for p in parts], floor))
    return np.concatenate([logmel, env]).astype(np.float64)


def hear(values: npt.ArrayLike, renderer: str = "amsynth", progress: Callable[[int], None] | None = None,
         describe_with: Callable[[FloatArray], FloatArray | None] = describe, width: int = N_FEATURES) -> FloatArray:
    """Descriptors ``(N, width)`` of patches ``(N, 41)`` by ``describe_with`` (the training descriptor unless
    told); rows that render silence are NaN."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != params.N_PARAMS:
        raise ValueError(f"expected patches of shape (N, {params.N_PARAMS}), got {v.shape}")
    play = player(renderer)
    out = np.full((len(v), width), np.nan)
    for i, row in enumerate(v):
        d = describe_with(play(params.clamp_vector(row)))
        if d is not None:
            out[i] = d
        if progress is not None:
            progress(i + 1)
    return out
