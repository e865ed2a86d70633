"""A path between two map points whose switches keep to the ends' own levels and change once.

The path runs along a :class:`Route`: a polyline through latent space, the straight line or the
way :mod:`timbrespace.models.patch_route` finds where the sound changes least. Decoding each point
of it gives continuous parameters that glide, but a stepped parameter (an oscillator's waveform,
the filter type, osc2's range or pitch) takes the decoder's most likely level at each point, and
across the map that can be a level neither end has (noise half way between a saw and a pulse), or
flip back and forth. Each flip is a jump in the sound. A :class:`PathPlan` fixes every stepped
parameter to the source's level, then the target's, switching once, where the decoder's own
preference between those two levels turns (the threshold that disagrees least with it along the
route). Where the ends agree, the level holds the whole way. The continuous parameters are the
decoder's at the route's point, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.models.patch_codec import PatchCodec

FloatArray = npt.NDArray[np.float64]
#: Points along the route at which the decoder's preferences are read to place each switch: a switch
#: lands within half a step (1/128 of the way) of where the preference turns.
GRID = 65


@dataclass(frozen=True)
class Route:
    """A way through latent space from the source (first point) to the target (last): a polyline
    ``(R, 2)`` and the alpha at each of its points (0 at the first, 1 at the last, never decreasing)."""

    points: FloatArray
    along: FloatArray

    def __post_init__(self) -> None:
        p, a = self.points, self.along
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2 or a.shape != (len(p),):
            raise ValueError(f"expected a polyline (R >= 2, 2) and an alpha per point, got {p.shape} and {a.shape}")
        if not (np.all(np.isfinite(p)) and a[0] == 0.0 and a[-1] == 1.0 and np.all(np.diff(a) >= 0.0)):
            raise ValueError("a route's points must be finite and its alphas rise from 0 to 1")

    @classmethod
    def line(cls, source: npt.ArrayLike, target: npt.ArrayLike) -> Route:
        """The straight line from ``source`` to ``target`` (latent ``(2,)``)."""
        ends = np.stack([np.asarray(source, np.float64).reshape(2), np.asarray(target, np.float64).reshape(2)])
        return cls(ends, np.array([0.0, 1.0]))

    @classmethod
    def through(cls, points: npt.ArrayLike, measured: npt.ArrayLike | None = None) -> Route:
        """The polyline through latent ``points`` ``(R, 2)``, alpha running by its length (measured in
        ``measured``'s coordinates, one row per point, where given: the unit square)."""
        p = np.asarray(points, dtype=np.float64)
        m = p if measured is None else np.asarray(measured, dtype=np.float64)
        if m.shape != p.shape:
            raise ValueError(f"expected one measured row per point {p.shape}, got {m.shape}")
        length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(m, axis=0), axis=1))])
        if length[-1] <= 0.0:
            return cls(p, np.linspace(0.0, 1.0, len(p)))
        along = length / length[-1]
        along[-1] = 1.0
        return cls(p, along)

    @property
    def source(self) -> FloatArray:
        """The first point ``(2,)``."""
        first: FloatArray = self.points[0]
        return first

    @property
    def target(self) -> FloatArray:
        """The last point ``(2,)``."""
        last: FloatArray = self.points[-1]
        return last

    def at(self, alphas: npt.ArrayLike) -> FloatArray:
        """Latent points ``(N, 2)`` at ``alphas`` of the way (clipped to 0 .. 1)."""
        a = np.clip(np.asarray(alphas, dtype=np.float64).ravel(), 0.0, 1.0)
        return np.stack([np.interp(a, self.along, self.points[:, 0]), np.interp(a, self.along, self.points[:, 1])],
                        axis=1)


@dataclass(frozen=True)
class PathPlan:
    """A route, and each stepped parameter's level before and after its switch, and where it switches."""

    route: Route
    params: npt.NDArray[np.intp]  # (G,) indices into the 41 values
    before: FloatArray  # (G,) the level at the source
    after: FloatArray  # (G,) the level at the target
    switch: FloatArray  # (G,) the alpha from which ``after`` holds, in (0, 1)

    def blend(self, alphas: npt.ArrayLike) -> FloatArray:
        """Latent points ``(N, 2)`` at ``alphas`` of the way along the route."""
        return self.route.at(alphas)

    def apply(self, values: FloatArray, alphas: npt.ArrayLike) -> FloatArray:
        """``values`` ``(N, 41)`` decoded at :meth:`blend` ``(alphas)``, with the planned stepped levels."""
        a = np.asarray(alphas, dtype=np.float64).reshape(-1, 1)
        out = np.array(values, dtype=np.float64)
        if out.ndim != 2 or len(out) != len(a):
            raise ValueError(f"expected one patch per alpha ({len(a)}), got values of shape {out.shape}")
        out[:, self.params] = np.where(a < self.switch, self.before, self.after)
        return out


def _threshold(preference: FloatArray) -> int:
    """The index ``k`` (1 .. len-1) splitting the line into source side ``< k`` and target side ``>= k``
    that disagrees least with ``preference`` (> 0 where the target's level is preferred), each
    disagreement weighed by how strongly the decoder prefers the other level."""
    wrong_before = np.concatenate([[0.0], np.cumsum(np.maximum(preference, 0.0))])
    wrong_after = np.concatenate([np.cumsum(np.maximum(-preference[::-1], 0.0))[::-1], [0.0]])
    cost = (wrong_before + wrong_after)[1:-1]  # neither side may be empty: the ends keep their levels
    return int(np.argmin(cost)) + 1


def plan(codec: PatchCodec, route: Route, logits: npt.ArrayLike) -> PathPlan:
    """The plan along ``route``, from the decoder's stepped logits ``(points, n_categorical)`` at evenly
    spaced alphas from its source (first row) to its target (last row)."""
    lg = np.asarray(logits, dtype=np.float64)
    if lg.ndim != 2 or lg.shape[0] < 2 or lg.shape[1] != codec.n_categorical:
        raise ValueError(f"expected logits (points >= 2, {codec.n_categorical}), got {lg.shape}")
    along = np.linspace(0.0, 1.0, lg.shape[0])
    count = len(codec.groups)
    before, after, switch = np.empty(count), np.empty(count), np.full(count, 0.5)
    for k, group in enumerate(codec.groups):
        block = lg[:, group.start : group.start + group.size]
        a, b = int(np.argmax(block[0])), int(np.argmax(block[-1]))
        before[k], after[k] = group.levels[a], group.levels[b]
        if a != b:
            i = _threshold(block[:, b] - block[:, a])
            switch[k] = 0.5 * (along[i - 1] + along[i])
    return PathPlan(route, np.array([g.param for g in codec.groups], dtype=np.intp), before, after, switch)
