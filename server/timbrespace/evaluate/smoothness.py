"""Smoothness and linearity of an interpolation path (after Le Vaillant and Dutoit, SPINVAE, 2023).

A path is a sequence of feature vectors ``f_0 .. f_K`` heard at evenly spaced steps from one
preset to another.  Each feature is first divided by its spread over a reference set of sounds
(``scale``: the rated presets), so every feature counts alike and two routes between the same
presets are scored on one scale:

* roughness (lower is smoother): ``sum_k ||f_{k+1} - 2 f_k + f_{k-1}||^2``, averaged over features;
  zero for a path whose features move at a constant rate, large where they jump;
* non-linearity (lower is more linear): ``mean_k ||f_k - lerp_k||^2``, averaged over features, where
  ``lerp_k`` is the straight line between the path's ends;
* relative roughness: the roughness over the ends' squared distance, so a path between two sounds
  alike that still wobbles scores high (dimensionless; no ``scale`` needed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: Added to the ends' squared distance (relative roughness) so a path between two sounds alike does
#: not divide by zero: one scaled feature unit squared, small against any audible difference.
FLOOR = 1.0


def _path(features: npt.ArrayLike, scale: npt.ArrayLike | None = None) -> FloatArray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 3:
        raise ValueError(f"expected a path of shape (steps >= 3, features), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("a path's features must be finite")
    if scale is None:
        return f
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), f.shape[1:])
    if not np.all(s > 0):
        raise ValueError("every feature's scale must be positive")
    scaled: FloatArray = f / s
    return scaled


def spread(features: npt.ArrayLike, floor: float) -> FloatArray:
    """Each feature's standard deviation over a set of sounds ``(N, D)``, at least ``floor``."""
    f = np.asarray(features, dtype=np.float64)
    result: FloatArray = np.maximum(f.std(axis=0), floor)
    return result


def _second_differences(f: FloatArray) -> FloatArray:
    d2: FloatArray = f[2:] - 2.0 * f[1:-1] + f[:-2]
    return d2


def roughness(features: npt.ArrayLike, scale: npt.ArrayLike) -> float:
    """Summed squared second difference along the path, of scaled features, averaged over features."""
    f = _path(features, scale)
    return float(np.sum(_second_differences(f) ** 2)) / int(f.shape[1])


def nonlinearity(features: npt.ArrayLike, scale: npt.ArrayLike) -> float:
    """Mean squared distance from the straight line between the ends, of scaled features, per feature."""
    f = _path(features, scale)
    t = np.linspace(0.0, 1.0, f.shape[0])[:, None]
    line = (1.0 - t) * f[0] + t * f[-1]
    return float(np.mean(np.sum((f - line) ** 2, axis=1))) / int(f.shape[1])


def relative_roughness(features: npt.ArrayLike, scale: npt.ArrayLike) -> float:
    """Summed squared second difference over the ends' squared distance (plus :data:`FLOOR`), scaled features."""
    f = _path(features, scale)
    return float(np.sum(_second_differences(f) ** 2)) / (float(np.sum((f[-1] - f[0]) ** 2)) + FLOOR)


def share_interval(successes: int, n: int, z: float = 1.645) -> tuple[float, float]:
    """Wilson's score interval (90 % for the default ``z``) of a share ``successes / n``: what a target
    on the share of pairs can be held to when there are only a few pairs; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n ({n}), got {successes}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))
