"""Where the map places a preset: at the point of the square that sounds most like it.

The VAE's encoder reads a preset's parameters, so it places an unseen preset by what its settings
resemble, and two presets that sound alike can land far apart.  Table I then rates the decode
there against the preset and finds depth and warmth astray, while the decoder holds, somewhere
in the square, a patch that sounds like it (measured in docs/patch-map.md).

The sound index places a preset by ear instead.  At training time a ``grid`` x ``grid`` lattice of
the square is decoded and each point played (the hearing renderer, C4, 2 s) and described
(:mod:`timbrespace.models.patch_hearing`); the rating head (:mod:`timbrespace.models.patch_ratings`,
fitted on rated *training* presets) turns every descriptor into the seven qualities Table I rates.
Every preset of the library is played and described the same way, and placed at the lattice point
whose predicted qualities are nearest its own (each quality over its spread).  The placements are
stored in the checkpoint, keyed by the preset's values, so the live engine looks them up and never
renders; a patch the library did not hold (a preset saved later) falls back to the encoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.mapping import grid_points
from timbrespace.models.patch_codec import clamp_batch

FloatArray = npt.NDArray[np.float64]
KEY_BYTES = 16


def preset_keys(values: FloatArray) -> list[bytes]:
    """The keys patches ``(N, 41)`` are stored under: each row's values as amSynth loads them (clamped,
    in one vectorised step), hashed."""
    v = np.ascontiguousarray(clamp_batch(values))
    return [hashlib.sha256(row.tobytes()).digest()[:KEY_BYTES] for row in v]


def lattice(low: FloatArray, high: FloatArray, grid: int) -> FloatArray:
    """The latent points ``(grid * grid, 2)`` at the centres of the square's cells, row by row."""
    result: FloatArray = low + grid_points(grid) * (high - low)
    return result


def predict(descriptors: FloatArray, head: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:
    """Qualities over their spread ``(N, 7)`` of raw descriptors ``(N, F)`` through the rating head."""
    result: FloatArray = ((descriptors - mean) / scale) @ head
    return result


@dataclass(frozen=True)
class SoundIndex:
    """The lattice's predicted qualities and the library's placements (latent points by preset key)."""

    points: FloatArray  # (G*G, 2) latent
    qualities: FloatArray  # (G*G, 7) predicted, each over its spread; NaN rows never chosen (silent)
    head: FloatArray  # (F, 7) on standardised descriptors
    mean: FloatArray  # (F,) descriptor standardisation
    scale: FloatArray  # (F,)
    placed: dict[bytes, FloatArray]

    def predict(self, descriptors: FloatArray) -> FloatArray:
        """Qualities over their spread ``(N, 7)`` of raw descriptors ``(N, F)``."""
        return predict(descriptors, self.head, self.mean, self.scale)

    def nearest(self, descriptors: FloatArray) -> FloatArray:
        """Latent points ``(N, 2)``: for each descriptor, the lattice point whose qualities are nearest."""
        q = self.predict(descriptors)
        grid = np.where(np.isfinite(self.qualities), self.qualities, np.inf)
        out = np.empty((len(q), 2))
        for start in range(0, len(q), 256):  # bounded memory: 256 x G*G distances at a time
            d = ((q[start : start + 256, None, :] - grid[None]) ** 2).sum(axis=2)
            out[start : start + 256] = self.points[np.argmin(d, axis=1)]
        return out

    def lookup(self, values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Stored placements of patches ``(N, 41)`` and which rows had one (the others are zeros)."""
        out = np.zeros((len(values), 2))
        found = np.zeros(len(values), dtype=bool)
        for i, key in enumerate(preset_keys(values)):
            z = self.placed.get(key)
            if z is not None:
                out[i], found[i] = z, True
        return out, found

    def to_metadata(self, report: dict[str, Any]) -> dict[str, Any]:
        """What the checkpoint stores (tensors and plain values, as weights-only loading accepts)."""
        keys = np.frombuffer(b"".join(self.placed), dtype=np.uint8).reshape(-1, KEY_BYTES)
        return {
            "points": torch.as_tensor(self.points), "qualities": torch.as_tensor(self.qualities),
            "head": torch.as_tensor(self.head), "mean": torch.as_tensor(self.mean),
            "scale": torch.as_tensor(self.scale), "keys": torch.as_tensor(keys.copy()),
            "placed": torch.as_tensor(np.stack(list(self.placed.values())) if self.placed else np.zeros((0, 2))),
            "report": report,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> SoundIndex:
        """The index a checkpoint stored (:meth:`to_metadata`); ValueError when it is malformed."""
        try:
            points, qualities = np.asarray(meta["points"], np.float64), np.asarray(meta["qualities"], np.float64)
            head = np.asarray(meta["head"], np.float64)
            mean, scale = np.asarray(meta["mean"], np.float64), np.asarray(meta["scale"], np.float64)
            keys, placed = np.asarray(meta["keys"], np.uint8), np.asarray(meta["placed"], np.float64)
        except (KeyError, TypeError) as e:
            raise ValueError(f"the sound index lacks {e}") from None
        if (points.ndim != 2 or points.shape[1] != 2 or qualities.shape[0] != len(points)
                or head.shape != (len(mean), qualities.shape[1]) or scale.shape != mean.shape
                or keys.shape != (len(placed), KEY_BYTES) or placed.shape[1:] != (2,)):
            raise ValueError("the sound index's arrays do not fit together")
        return cls(points, qualities, head, mean, scale,
                   {bytes(k): z for k, z in zip(keys, placed, strict=True)})


def build(decode: Callable[[FloatArray], FloatArray], hear: Callable[[FloatArray], FloatArray],
          low: FloatArray, high: FloatArray, grid: int, head: FloatArray, mean: FloatArray, scale: FloatArray,
          library: FloatArray, library_heard: FloatArray | None = None) -> SoundIndex:
    """Decode the lattice, hear it and the ``library`` presets in one call of ``hear`` (rows of
    ``library_heard`` that are finite are reused), and place each preset; silent presets are not placed
    (the encoder places them)."""
    if grid < 2:
        raise ValueError(f"the sound index's grid must be at least 2, got {grid}")
    points = lattice(low, high, grid)
    descriptors = np.full((len(library), len(mean)), np.nan) if library_heard is None else library_heard.copy()
    todo = ~np.isfinite(descriptors).all(axis=1)
    heard = hear(np.concatenate([decode(points), library[todo]]))
    descriptors[todo] = heard[len(points) :]
    # A silent lattice point predicts NaN qualities and is never chosen.
    index = SoundIndex(points, predict(heard[: len(points)], head, mean, scale), head, mean, scale, {})
    ok = np.isfinite(descriptors).all(axis=1)
    index.placed.update(zip(preset_keys(library[ok]), index.nearest(descriptors[ok]), strict=True))
    return index
