"""Where the map places a preset: at the point of the square that sounds most like it.

The VAE's encoder reads a preset's parameters, so it places an unseen preset by what its settings
resemble, and two presets that sound alike can land far apart.  Table I then rates the decode
there against the preset and finds depth and warmth astray, while the decoder holds, somewhere
in the square, a patch that sounds like it (measured in docs/patch-map.md).

The sound index places a preset by ear instead.  At training time a ``grid`` x ``grid`` lattice of
the square is decoded and each point played (the hearing renderer, C4, 2 s) and described
(:mod:`timbrespace.models.patch_rating_descriptor`); the rating head
(:mod:`timbrespace.models.patch_ratings`, fitted on rated *training* presets) turns every descriptor
into the seven qualities Table I rates.  Every preset of the library is played and described the
same way, and placed at the lattice point whose predicted qualities are nearest its own (each
quality over its spread; near ties settled towards where the encoder places it, :class:`Anchor`).
The placements are
stored in the checkpoint, keyed by the preset's values, so the live engine looks them up and never
renders; a patch the library did not hold (a preset saved later) falls back to the encoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.mapping import grid_points
from timbrespace.models.patch_codec import clamp_batch
from timbrespace.models.patch_ratings import RatingHead

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


@dataclass(frozen=True)
class Anchor:
    """Where the encoder places each preset (latent ``(N, 2)``), the square's bounds, and how much
    nearness to that place weighs against the predicted qualities' mismatch."""

    encoded: FloatArray
    low: FloatArray
    high: FloatArray
    weight: float


@dataclass(frozen=True)
class SoundIndex:
    """The lattice's predicted qualities and the library's placements (latent points by preset key)."""

    points: FloatArray  # (G*G, 2) latent
    qualities: FloatArray  # (G*G, 7) predicted, each over its spread; NaN rows never chosen (silent)
    # None for an index written before the kernel head: its placements still load, and nothing live
    # predicts (a patch the library did not hold goes to the encoder).
    head: RatingHead | None
    placed: dict[bytes, FloatArray]

    def nearest(self, qualities: FloatArray, anchor: Anchor | None = None) -> FloatArray:
        """Latent points ``(N, 2)``: for each row of predicted qualities, the lattice point whose are nearest
        (mean squared difference), plus ``anchor``'s weight x the squared unit-square distance to its point."""
        q = np.asarray(qualities, dtype=np.float64)
        grid = np.where(np.isfinite(self.qualities), self.qualities, np.inf)
        if anchor is not None and len(anchor.encoded) != len(q):
            raise ValueError(f"expected an anchor per preset, got {len(anchor.encoded)} for {len(q)}")
        if anchor is not None:
            span = anchor.high - anchor.low
            grid_unit, from_unit = (self.points - anchor.low) / span, (anchor.encoded - anchor.low) / span
        out = np.empty((len(q), 2))
        for start in range(0, len(q), 256):  # bounded memory: 256 x G*G distances at a time
            d = ((q[start : start + 256, None, :] - grid[None]) ** 2).mean(axis=2)
            if anchor is not None and anchor.weight > 0:
                d += anchor.weight * ((from_unit[start : start + 256, None, :] - grid_unit[None]) ** 2).sum(axis=2)
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
            "head": None if self.head is None else self.head.to_metadata(), "keys": torch.as_tensor(keys.copy()),
            "placed": torch.as_tensor(np.stack(list(self.placed.values())) if self.placed else np.zeros((0, 2))),
            "report": report,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> SoundIndex:
        """The index a checkpoint stored (:meth:`to_metadata`); ValueError when it is malformed."""
        try:
            points, qualities = np.asarray(meta["points"], np.float64), np.asarray(meta["qualities"], np.float64)
            keys, placed = np.asarray(meta["keys"], np.uint8), np.asarray(meta["placed"], np.float64)
            stored = meta["head"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"the sound index lacks {e}") from None
        # Before the kernel head, the head was a linear map stored as one array: not kept (see ``head``).
        head = RatingHead.from_metadata(stored) if isinstance(stored, dict) else None
        if (points.ndim != 2 or points.shape[1] != 2 or qualities.shape[0] != len(points)
                or (head is not None and qualities.shape[1] != head.dual.shape[1])
                or keys.shape != (len(placed), KEY_BYTES) or placed.shape[1:] != (2,)):
            raise ValueError("the sound index's arrays do not fit together")
        return cls(points, qualities, head, {bytes(k): z for k, z in zip(keys, placed, strict=True)})


def build(points: FloatArray, lattice_heard: FloatArray, library: FloatArray, library_heard: FloatArray,
          head: RatingHead, anchor: Anchor | None = None, measured: FloatArray | None = None) -> SoundIndex:
    """Place each ``library`` preset ``(N, 41)`` at the ``points`` whose predicted qualities are nearest
    its own (and, with ``anchor``, near where the encoder places it), from both's rating descriptors
    (rows that are not finite: silent); silent presets are not placed (the encoder places them) and
    silent points are never chosen.  ``measured`` ``(G*G, 7)``: points' rated qualities (each over its
    spread, as the head predicts them; NaN rows: not rated), used where given instead of the prediction."""
    if len(lattice_heard) != len(points) or len(library_heard) != len(library):
        raise ValueError(f"expected a descriptor per point and per preset, got {len(lattice_heard)} for "
                         f"{len(points)} points and {len(library_heard)} for {len(library)} presets")
    qualities = head.predict(lattice_heard)
    if measured is not None:
        if measured.shape != qualities.shape:
            raise ValueError(f"expected measured qualities of shape {qualities.shape}, got {measured.shape}")
        rated = np.isfinite(measured).all(axis=1) & np.isfinite(qualities).all(axis=1)
        qualities[rated] = measured[rated]
    index = SoundIndex(points, qualities, head, {})
    ok = np.isfinite(library_heard).all(axis=1)
    if anchor is not None:
        anchor = Anchor(anchor.encoded[ok], anchor.low, anchor.high, anchor.weight)
    placed = index.nearest(head.predict(library_heard[ok]), anchor)
    index.placed.update(zip(preset_keys(library[ok]), placed, strict=True))
    return index
