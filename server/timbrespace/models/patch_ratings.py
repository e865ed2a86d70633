"""What Table I rates, for training to weigh: a linear head from heard descriptors to the seven qualities.

The eval rates a patch with the AudioCommons timbral models (seconds a patch); training hears it as
:data:`~timbrespace.models.patch_hearing.N_FEATURES` descriptors (milliseconds).  The descriptors'
summed squared error weighs every band alike, while the ratings turn on a few directions of them
(depth, warmth and boominess on the low bands' balance).  A ridge regression fitted on rated
*training* presets gives those directions: the sound index
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
FOLDS = 8  # cross-validation of the head, for the report


class RatingsError(ValueError):
    """A ratings file that cannot be used as it is (its message names the file and what was wrong)."""


@dataclass(frozen=True)
class Ratings:
    """Rated presets: qualified names and their ratings ``(N, 7)`` in :data:`QUALITIES` order."""

    names: list[str]
    values: FloatArray
    sha256: str


def load(path: str | os.PathLike[str]) -> Ratings:
    """Read and check a ratings file; :class:`RatingsError` names what is wrong."""
    import hashlib

    try:
        raw = open(path, "rb").read()  # noqa: SIM115 - read whole, then hash what was parsed
        doc = json.loads(raw)
    except (OSError, ValueError) as e:
        raise RatingsError(f"{path}: cannot read a ratings file ({e}); make one with python -m "
                           "timbrespace.evaluate.rate_presets --out FILE") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RatingsError(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\"")
    if list(doc.get("qualities", [])) != list(QUALITIES):
        raise RatingsError(f"{path}: qualities {doc.get('qualities')}; expected {list(QUALITIES)}")
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
    return Ratings(names, np.asarray(rows, dtype=np.float64), hashlib.sha256(raw).hexdigest())


def _ridge(x: FloatArray, y: FloatArray, ridge: float) -> tuple[FloatArray, FloatArray]:
    """Weights ``(F, Q)`` and intercept ``(Q,)`` of a ridge regression (the intercept unpenalised)."""
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, ym - xm @ w


def fit_head(features: FloatArray, ratings: FloatArray, ridge: float = 1.0,
             seed: int = 0) -> tuple[FloatArray, dict[str, Any]]:
    """The head ``(F, 7)``: standardised descriptors ``features`` ``(N, F)`` to ratings over their spread.

    Returns the weights and a report: the ratings' spread and the head's cross-validated R² per quality.
    """
    if features.ndim != 2 or ratings.shape != (len(features), len(QUALITIES)):
        raise ValueError(f"expected features (N, F) and ratings (N, {len(QUALITIES)}), got {features.shape} and "
                         f"{ratings.shape}")
    if len(features) < 2 * FOLDS:
        raise ValueError(f"{len(features)} rated presets; the head needs at least {2 * FOLDS}")
    if not ridge > 0:
        raise ValueError(f"ridge must be positive, got {ridge}")
    spread = np.maximum(ratings.std(axis=0), 1.0)  # a point at least, as the descriptors take a dB
    y = ratings / spread
    fold = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    pred = np.empty_like(y)
    for f in range(FOLDS):
        w, b = _ridge(features[fold != f], y[fold != f], ridge)
        pred[fold == f] = features[fold == f] @ w + b
    r2 = 1.0 - ((pred - y) ** 2).sum(axis=0) / ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    w, _ = _ridge(features, y, ridge)
    report = {"presets": len(y), "ridge": ridge, "spread": dict(zip(QUALITIES, map(float, spread), strict=True)),
              "cv_r2": dict(zip(QUALITIES, map(float, r2), strict=True))}
    return w, report
