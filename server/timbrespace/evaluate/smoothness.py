"""Smoothness and linearity of an interpolation path (after Le Vaillant and Dutoit, SPINVAE, 2023).

A path is a sequence of feature vectors ``f_0 .. f_K`` heard at evenly spaced steps from one
preset to another.  Both scores are normalised by the squared distance between the path's ends,
so they are dimensionless and comparable across pairs and between two paths joining nearby ends:

* roughness of the path (lower is smoother): ``sum_k ||f_{k+1} - 2 f_k + f_{k-1}||^2 / ||f_K - f_0||^2``;
  zero for a path whose features move at a constant rate, large where they jump;
* non-linearity (lower is more linear): ``mean_k ||f_k - lerp_k||^2 / ||f_K - f_0||^2``, where
  ``lerp_k`` is the straight line between the ends.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: Added to the ends' squared distance so a path between two sounds alike does not divide by zero;
#: one feature unit (a rating point, a decibel) squared, small against any audible difference.
FLOOR = 1.0


def _path(features: npt.ArrayLike) -> FloatArray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 3:
        raise ValueError(f"expected a path of shape (steps >= 3, features), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("a path's features must be finite")
    return f


def _span(f: FloatArray) -> float:
    return float(np.sum((f[-1] - f[0]) ** 2)) + FLOOR


def roughness(features: npt.ArrayLike) -> float:
    """Summed squared second difference along the path, over the ends' squared distance."""
    f = _path(features)
    d2 = f[2:] - 2.0 * f[1:-1] + f[:-2]
    return float(np.sum(d2**2)) / _span(f)


def nonlinearity(features: npt.ArrayLike) -> float:
    """Mean squared distance from the straight line between the ends, over the ends' squared distance."""
    f = _path(features)
    t = np.linspace(0.0, 1.0, f.shape[0])[:, None]
    line = (1.0 - t) * f[0] + t * f[-1]
    return float(np.mean(np.sum((f - line) ** 2, axis=1))) / _span(f)
