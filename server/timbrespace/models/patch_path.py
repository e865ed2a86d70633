"""A path between two map points whose switches keep to the ends' own levels and change once.

Blending two latent points and decoding each step gives continuous parameters that glide, but a
stepped parameter (an oscillator's waveform, the filter type, osc2's range or pitch) takes the
decoder's most likely level at each step, and along a line across the map that can be a level
neither end has (noise half way between a saw and a pulse), or flip back and forth. Each flip is
a jump in the sound. A :class:`PathPlan` fixes every stepped parameter to the source's level, then
the target's, switching once, where the decoder's own preference between those two levels turns
(the threshold that disagrees least with it along the line). Where the ends agree, the level
holds the whole way. The continuous parameters are the decoder's at the blended point, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.models.patch_codec import PatchCodec

FloatArray = npt.NDArray[np.float64]
#: Points along the line at which the decoder's preferences are read to place each switch: a switch
#: lands within half a step (1/128 of the way) of where the preference turns.
GRID = 65


@dataclass(frozen=True)
class PathPlan:
    """Each stepped parameter's level before and after its switch, and where it switches."""

    source: FloatArray  # (2,) latent
    target: FloatArray  # (2,) latent
    params: npt.NDArray[np.intp]  # (G,) indices into the 41 values
    before: FloatArray  # (G,) the level at the source
    after: FloatArray  # (G,) the level at the target
    switch: FloatArray  # (G,) the alpha from which ``after`` holds, in (0, 1)

    def blend(self, alphas: npt.ArrayLike) -> FloatArray:
        """Latent points ``(N, 2)`` at ``alphas`` of the way from the source to the target."""
        a = np.asarray(alphas, dtype=np.float64).reshape(-1, 1)
        result: FloatArray = (1.0 - a) * self.source + a * self.target
        return result

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


def plan(codec: PatchCodec, source: npt.ArrayLike, target: npt.ArrayLike, logits: npt.ArrayLike) -> PathPlan:
    """The plan for the line from ``source`` to ``target`` (latent ``(2,)``), from the decoder's stepped
    logits ``(points, n_categorical)`` at evenly spaced points from the one (first row) to the other
    (last row)."""
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
    return PathPlan(np.asarray(source, dtype=np.float64).reshape(2).copy(),
                    np.asarray(target, dtype=np.float64).reshape(2).copy(),
                    np.array([g.param for g in codec.groups], dtype=np.intp), before, after, switch)
