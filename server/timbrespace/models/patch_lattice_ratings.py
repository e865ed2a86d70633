"""The map's own lattice, rated: what Table I would say of the patches the sound index chooses among.

The rating head predicts the seven qualities from a render's descriptor, and it learned from
presets; the lattice's decoded patches are another population (the decoder's in-betweens), where
its predictions err most, and a preset sent to a point whose predicted roughness is wrong comes
back rough.  Rating lattice points as the presets are rated (amSynth, C4, 4 s, the AudioCommons
models; ``python -m timbrespace.evaluate.rate_lattice``) gives the index those points' real
qualities and the head more examples of what it must judge.

A rated point is keyed by its decoded patch to a thousandth of each parameter's range
(:func:`lattice_keys`), not by its place: a retrain that decodes the same patches finds its
ratings whatever float kernels it ran on, and a decoder that changed finds none (stale ratings
are never used).  Points are rated coarse to fine (:func:`order`), so a longer run adds to the
same file and the ratings always cover the square evenly.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.models.patch_codec import clamp_batch
from timbrespace.models.patch_ratings import QUALITIES, RatingsError, read_document
from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]
FORMAT = "timbrespace-lattice-ratings/1"
#: A key tells patches apart to this share of each parameter's range: far below what a knob resolves,
#: far above the float rounding a decode on another CPU can add.
RESOLUTION = 1e-3
KEY_HEX = 32


def lattice_keys(values: npt.ArrayLike) -> list[str]:
    """A key (hex) per patch ``(N, 41)``: its values on a grid of :data:`RESOLUTION` of each range, hashed."""
    v = clamp_batch(np.asarray(values, dtype=np.float64).reshape(-1, params.N_PARAMS))
    steps = np.rint((v - params.MINIMA) / (params.MAXIMA - params.MINIMA) / RESOLUTION).astype(np.int64)
    return [hashlib.sha256(row.tobytes()).hexdigest()[:KEY_HEX] for row in np.ascontiguousarray(steps)]


def order(grid: int) -> npt.NDArray[np.intp]:
    """Lattice indices (row by row) coarse to fine: the cells with both coordinates even, then both odd
    (together a quincunx over the square), then the rest; row by row within each."""
    row, col = np.divmod(np.arange(grid * grid), grid)
    level = np.where((row % 2 == 0) & (col % 2 == 0), 0, np.where((row % 2 == 1) & (col % 2 == 1), 1, 2))
    result: npt.NDArray[np.intp] = np.lexsort((np.arange(grid * grid), level)).astype(np.intp)
    return result


@dataclass(frozen=True)
class LatticeRatings:
    """Rated lattice patches by key (ratings ``(7,)`` in :data:`QUALITIES` order; None: silent)."""

    by_key: dict[str, FloatArray | None]
    sha256: str

    def known(self, values: npt.ArrayLike) -> FloatArray:
        """Ratings ``(N, 7)`` of patches ``(N, 41)``: NaN rows where the file has none (or the patch was silent)."""
        keys = lattice_keys(values)
        out = np.full((len(keys), len(QUALITIES)), np.nan)
        for i, key in enumerate(keys):
            r = self.by_key.get(key)
            if r is not None:
                out[i] = r
        return out


def load(path: str | os.PathLike[str]) -> LatticeRatings:
    """Read and check a lattice ratings file; :class:`RatingsError` names what is wrong."""
    doc, digest = read_document(path, "lattice ratings", FORMAT, "timbrespace.evaluate.rate_lattice")
    points, silent = doc.get("points"), doc.get("silent", [])
    if not isinstance(points, list) or not isinstance(silent, list):
        raise RatingsError(f"{path}: expected lists under \"points\" and \"silent\"")
    by_key: dict[str, FloatArray | None] = {}
    for k, p in enumerate(points):
        key = p.get("key") if isinstance(p, dict) else None
        r = p.get("ratings") if isinstance(p, dict) else None
        if (not isinstance(key, str) or len(key) != KEY_HEX or not isinstance(r, list) or len(r) != len(QUALITIES)
                or not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in r)):
            raise RatingsError(f"{path}: points[{k}]: expected {{\"key\": {KEY_HEX} hex digits, \"ratings\": "
                               f"[{len(QUALITIES)} finite numbers]}}, got {str(p)[:80]}")
        by_key[key] = np.asarray(r, dtype=np.float64)
    for k, key in enumerate(silent):
        if not isinstance(key, str) or len(key) != KEY_HEX:
            raise RatingsError(f"{path}: silent[{k}]: expected a key of {KEY_HEX} hex digits, got {str(key)[:80]}")
        by_key.setdefault(key, None)
    return LatticeRatings(by_key, digest)
