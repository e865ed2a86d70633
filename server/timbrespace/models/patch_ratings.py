"""What Table I rates, predicted from a render: a kernel ridge head from heard descriptors to the seven qualities.

The eval rates a patch with the AudioCommons timbral models (seconds a patch); training hears it as
a rating descriptor (:mod:`timbrespace.models.patch_rating_descriptor`, milliseconds).  The
descriptor's distances weigh every column alike, while the ratings turn on a few of them, and not
linearly (the models threshold, take logarithms and count spectral peaks).  A kernel ridge
regression with a Gaussian kernel, fitted on rated *training* presets, predicts the ratings; its
width and regularisation are chosen by cross-validation on those presets alone.  The sound index
(:mod:`timbrespace.models.patch_sound_index`) compares patches by their predicted ratings, each
quality over its spread among the rated presets.

The ratings come from a file (``python -m timbrespace.evaluate.rate_presets``): rating is what
makes the eval slow, so a training run reads them rather than rating again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: The qualities Table I reports, in its order (the eval's timbral module rates them in this order).
QUALITIES = ("hardness", "depth", "brightness", "roughness", "warmth", "sharpness", "boominess")
FORMAT = "timbrespace-preset-ratings/1"
FOLDS = 8  # cross-validation of the head: it chooses the kernel's width and ridge, and the report gives its R²


class RatingsError(ValueError):
    """A ratings file that cannot be used as it is (its message names the file and what was wrong)."""


@dataclass(frozen=True)
class Ratings:
    """Rated presets: qualified names and their ratings ``(N, 7)`` in :data:`QUALITIES` order."""

    names: list[str]
    values: FloatArray
    sha256: str


def read_document(path: str | os.PathLike[str], kind: str, form: str, tool: str) -> tuple[dict[str, Any], str]:
    """A ratings document of format ``form`` (a ``kind`` of ratings file, made by ``python -m tool``) and the
    sha256 of its bytes, once its format and qualities are checked; :class:`RatingsError` names what is wrong."""
    import hashlib

    try:
        raw = open(path, "rb").read()  # noqa: SIM115 - read whole, then hash what was parsed
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise RatingsError(f"{path}: cannot read a {kind} file ({e}); make one with python -m {tool} --out FILE") \
            from None
    if not isinstance(doc, dict) or doc.get("format") != form:
        raise RatingsError(f"{path}: expected a JSON object with \"format\": \"{form}\"")
    if list(doc.get("qualities", [])) != list(QUALITIES):
        raise RatingsError(f"{path}: qualities {doc.get('qualities')}; expected {list(QUALITIES)}")
    return doc, hashlib.sha256(raw).hexdigest()


def load(path: str | os.PathLike[str]) -> Ratings:
    """Read and check a ratings file; :class:`RatingsError` names what is wrong."""
    doc, digest = read_document(path, "ratings", FORMAT, "timbrespace.evaluate.rate_presets")
    presets = doc.get("presets")
    if not isinstance(presets, list) or not presets:
        raise RatingsError(f"{path}: expected a non-empty list under \"presets\"")
    names: list[str] = []
    rows: list[list[float]] = []
    for k, p in enumerate(presets):
        r = p.get("ratings") if isinstance(p, dict) else None
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str) or not isinstance(r, list) or len(r) != len(QUALITIES):
            raise RatingsError(f"{path}: presets[{k}]: expected {{\"name\": str, \"ratings\": [{len(QUALITIES)} "
                               f"numbers]}}, got {str(p)[:80]}")
        # The timbral models' scale is nominally 0-100 but not clipped (boominess goes below 0), so only
        # finiteness is asked.
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in r):
            raise RatingsError(f"{path}: presets[{k}] ({name}): ratings must be finite numbers, got {r}")
        names.append(name)
        rows.append([float(v) for v in r])
    if len(set(names)) != len(names):
        raise RatingsError(f"{path}: a preset is rated twice")
    return Ratings(names, np.asarray(rows, dtype=np.float64), digest)


#: Kernel widths tried, times 1 / the descriptor's columns (the squared distance of two standardised
#: descriptors grows with them), and the ridge terms tried; cross-validation picks one pair.
GAMMAS = (0.1, 0.2, 0.4)
ALPHAS = (0.01, 0.03, 0.1)
_CHUNK = 512  # rows of a kernel at a time when predicting: bounded memory for any lattice


def _kernel(a: FloatArray, b: FloatArray, gamma: float) -> FloatArray:
    d2 = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T
    result: FloatArray = np.exp(-gamma * np.maximum(d2, 0.0))
    return result


def _solve(x: FloatArray, y: FloatArray, gamma: float, alpha: float) -> FloatArray:
    k = _kernel(x, x, gamma)
    k[np.diag_indices_from(k)] += alpha
    dual: FloatArray = np.linalg.solve(k, y).astype(np.float64)
    return dual


@dataclass(frozen=True)
class RatingHead:
    """Descriptors ``(N, F)`` to the seven qualities, each over its spread among the rated presets."""

    support: FloatArray  # (M, F) the rated presets' standardised descriptors
    dual: FloatArray  # (M, 7) kernel weights
    offset: FloatArray  # (7,) the rated presets' mean quality, over its spread
    mean: FloatArray  # (F,) descriptor standardisation
    scale: FloatArray  # (F,)
    gamma: float

    def predict(self, descriptors: FloatArray) -> FloatArray:
        """Predicted qualities ``(N, 7)``; NaN rows for descriptors that are not finite (silent renders)."""
        d = np.asarray(descriptors, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != len(self.mean):
            raise ValueError(f"expected descriptors (N, {len(self.mean)}), got {d.shape}")
        out = np.full((len(d), self.dual.shape[1]), np.nan)
        ok = np.isfinite(d).all(axis=1)
        x = (d[ok] - self.mean) / self.scale
        rows = np.empty((len(x), self.dual.shape[1]))
        for start in range(0, len(x), _CHUNK):
            rows[start : start + _CHUNK] = _kernel(x[start : start + _CHUNK], self.support, self.gamma) @ self.dual
        out[ok] = rows + self.offset
        return out

    def to_metadata(self) -> dict[str, Any]:
        """Tensors and plain values, as weights-only checkpoint loading accepts."""
        import torch

        return {"support": torch.as_tensor(self.support, dtype=torch.float32),
                "dual": torch.as_tensor(self.dual, dtype=torch.float32),
                "offset": torch.as_tensor(self.offset), "mean": torch.as_tensor(self.mean),
                "scale": torch.as_tensor(self.scale), "gamma": float(self.gamma)}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> RatingHead:
        """The head :meth:`to_metadata` stored; ValueError when it is malformed."""
        try:
            support, dual = np.asarray(meta["support"], np.float64), np.asarray(meta["dual"], np.float64)
            offset = np.asarray(meta["offset"], np.float64)
            mean, scale = np.asarray(meta["mean"], np.float64), np.asarray(meta["scale"], np.float64)
            gamma = float(meta["gamma"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the rating head lacks {e}") from None
        if (support.ndim != 2 or dual.shape != (len(support), len(QUALITIES)) or offset.shape != (len(QUALITIES),)
                or mean.shape != (support.shape[1],) or scale.shape != mean.shape or not gamma > 0):
            raise ValueError("the rating head's arrays do not fit together")
        return cls(support, dual, offset, mean, scale, gamma)


def _single(a: FloatArray) -> FloatArray:
    result: FloatArray = a.astype(np.float32).astype(np.float64)
    return result


def _cv_r2(x: FloatArray, y: FloatArray, fold: npt.NDArray[np.intp], gamma: float, alpha: float) -> FloatArray:
    pred = np.empty_like(y)
    for f in range(FOLDS):
        train, test = fold != f, fold == f
        offset = y[train].mean(axis=0)
        pred[test] = _kernel(x[test], x[train], gamma) @ _solve(x[train], y[train] - offset, gamma, alpha) + offset
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    # A quality every rated preset shares has nothing to explain: its R² is undefined (NaN).
    r2: FloatArray = 1.0 - ((pred - y) ** 2).sum(axis=0) / np.where(total > 0, total, np.nan)
    return r2


def fit_head(features: FloatArray, ratings: FloatArray, seed: int = 0) -> tuple[RatingHead, dict[str, Any]]:
    """The head fitted on rated presets' descriptors ``features`` ``(N, F)`` and ``ratings`` ``(N, 7)``.

    The kernel's width and ridge term are the pair of :data:`GAMMAS` x :data:`ALPHAS` with the best
    mean cross-validated R² (8 folds, seeded); the report gives the ratings' spread, the choice and
    its R² per quality.
    """
    if features.ndim != 2 or ratings.shape != (len(features), len(QUALITIES)):
        raise ValueError(f"expected features (N, F) and ratings (N, {len(QUALITIES)}), got {features.shape} and "
                         f"{ratings.shape}")
    if len(features) < 2 * FOLDS:
        raise ValueError(f"{len(features)} rated presets; the head needs at least {2 * FOLDS}")
    if not np.isfinite(features).all() or not np.isfinite(ratings).all():
        raise ValueError("the rated presets' descriptors and ratings must be finite (leave silent presets out)")
    spread = np.maximum(ratings.std(axis=0), 1.0)  # a point at least, as the descriptors take a dB
    y = ratings / spread
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), 1e-6)  # a constant column adds nothing, and must not divide by 0
    x = (features - mean) / scale
    fold = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    tried = [(g / x.shape[1], a, _cv_r2(x, y, fold, g / x.shape[1], a)) for g in GAMMAS for a in ALPHAS]
    gamma, alpha, r2 = max(tried, key=lambda t: float(np.nanmean(t[2])) if np.isfinite(t[2]).any() else 0.0)
    offset = y.mean(axis=0)
    # The support and weights are kept at single precision, as the checkpoint stores them (they are
    # most of its size), so the head that placed the presets is the head that loads.
    x = _single(x)
    head = RatingHead(x, _single(_solve(x, y - offset, gamma, alpha)), offset, mean, scale, gamma)
    report = {"presets": len(y), "kernel": "gaussian", "gamma": gamma, "alpha": alpha,
              "spread": dict(zip(QUALITIES, map(float, spread), strict=True)),
              "cv_r2": dict(zip(QUALITIES, map(float, r2), strict=True))}
    return head, report
