"""The AudioCommons timbral models (``timbral_models`` 0.4.0), adapted to today's librosa, as one call.

The package was written against librosa 0.6 and numpy 1, and today's versions break it in two
places: librosa 0.10 made ``y`` and ``sr`` keyword-only, so three of its calls fail
(``onset_detect``, ``onset_strength``, ``resample``), and numpy 2 dropped ``np.lib.pad`` (the
hardness and roughness models pad with it).  The package is installed without its dependencies
(its setup.py names the dead ``sklearn`` distribution; scikit-learn provides the same module).
Rather than edit site-packages or patch librosa or numpy for the whole process, :func:`_adapt`
replaces the ``librosa`` and ``np`` names inside the modules that use the old forms with small
stand-ins that take the old form and call today's: nothing else in the process sees a change.

:func:`rate` gives the seven qualities of Peachey, Oore and Malloch's Table I, each 0-100.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.models.patch_ratings import QUALITIES as QUALITIES  # the paper's, in its order

_FUNCTIONS = {q: f"timbral_{'booming' if q == 'boominess' else q}" for q in QUALITIES}


class TimbralUnavailable(RuntimeError):
    """``timbral_models`` is not installed (``pip install --no-deps timbral_models==0.4.0``)."""


def _librosa_0_6() -> SimpleNamespace:
    """The slice of librosa's old API that timbral_models calls, on top of today's librosa."""
    import librosa

    def onset_detect(y: Any, sr: int = 22050, *args: Any, **kw: Any) -> Any:
        return librosa.onset.onset_detect(y=y, sr=sr, *args, **kw)  # noqa: B026 - args is always empty

    def onset_strength(y: Any, sr: int = 22050, **kw: Any) -> Any:
        return librosa.onset.onset_strength(y=y, sr=sr, **kw)

    def resample(y: Any, orig_sr: int, target_sr: int, **kw: Any) -> Any:
        return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, **kw)

    return SimpleNamespace(
        onset=SimpleNamespace(onset_detect=onset_detect, onset_strength=onset_strength),
        core=SimpleNamespace(stft=librosa.stft, istft=librosa.istft, resample=resample),
        decompose=librosa.decompose,
    )


class _Numpy1(ModuleType):
    """numpy, plus the ``np.lib.pad`` alias numpy 2 removed (the same function as ``np.pad``)."""

    def __init__(self) -> None:
        super().__init__("numpy")
        lib = ModuleType("numpy.lib")
        lib.__getattr__ = lambda name: getattr(np.lib, name)  # type: ignore[method-assign]
        lib.pad = np.pad  # type: ignore[attr-defined]
        self.lib = lib

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


_package: ModuleType | None = None


def _adapt() -> ModuleType:
    """Import timbral_models once, with its librosa calls adapted (see the module's docstring)."""
    global _package
    if _package is None:
        try:
            package = importlib.import_module("timbral_models")
        except ImportError as e:
            raise TimbralUnavailable(
                f"the AudioCommons timbral models cannot be imported ({e}); install them with "
                "`pip install -e '.[eval]' && pip install --no-deps timbral_models==0.4.0`"
            ) from None
        librosa, numpy = _librosa_0_6(), _Numpy1()
        for name in ("timbral_models.timbral_util", "timbral_models.Timbral_Hardness"):
            importlib.import_module(name).librosa = librosa  # type: ignore[attr-defined]
        for name in ("timbral_models.Timbral_Hardness", "timbral_models.Timbral_Roughness"):
            importlib.import_module(name).np = numpy  # type: ignore[attr-defined]
        _package = package
    return _package


def available() -> bool:
    """Whether the timbral models import."""
    try:
        _adapt()
    except TimbralUnavailable:
        return False
    return True


def rate(audio: npt.ArrayLike, sample_rate: int) -> dict[str, float]:
    """The seven qualities (0-100 scale, unclipped as the paper's models give them) of ``audio``.

    ``audio``: mono ``(n,)`` or ``(n, channels)`` (summed to mono by the models).  The models
    loudness-normalise to -24 LUFS themselves.  ValueError for silence or a non-finite signal.
    """
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[0] == 0:
        raise ValueError(f"expected audio of shape (n,) or (n, channels), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("audio must be finite")
    if not np.any(a):
        raise ValueError("audio is silent; the timbral models cannot rate silence")
    if a.ndim == 2:
        a = a.mean(axis=1)  # as the models' own mono sum, once here rather than in each model
    tm = _adapt()
    out: dict[str, float] = {}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # The models divide by near-zero spectra on sparse signals and say so at every call.
        warnings.simplefilter("ignore")
        for quality in QUALITIES:
            out[quality] = float(getattr(tm, _FUNCTIONS[quality])(a, fs=int(sample_rate)))
    return out
