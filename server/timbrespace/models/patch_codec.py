"""Patch vectors (41 amSynth values) <-> the VAE's feature columns.

Layout: first the continuous parameters (``step == 0``), each scaled linearly
to [0, 1] on amSynth's stored scale; then one one-hot block per stepped
parameter, one column per level.  Stepped means every parameter with a step:
the 9 switches with named choices and also ``osc2_range`` (8 octaves) and
``osc2_pitch`` (25 semitones), because regressing a pitch interval averages
neighbouring intervals (a fifth and an octave blend into a dissonant ninth);
a class cannot.  That gives 30 + 67 = 97 columns (the seed paper used 56).

The stored scale is already the musically useful one: envelope times are
stored as the cube root of seconds, cutoff as a base-16 exponent, volume as the
square root of gain, so scaling it linearly spreads typical values well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Group:
    """One stepped parameter's one-hot block."""

    param: int  # index into the 41 values
    start: int  # first column within the categorical block
    levels: tuple[float, ...]  # the value of each column

    @property
    def size(self) -> int:
        """Number of columns (levels)."""
        return len(self.levels)


def _levels(spec: params.ParamSpec) -> tuple[float, ...]:
    count = round((spec.maximum - spec.minimum) / spec.step) + 1
    return tuple(spec.minimum + k * spec.step for k in range(count))


class PatchCodec:
    """Encode patches to features and decode model outputs back to valid patches."""

    def __init__(self) -> None:
        self.continuous: tuple[int, ...] = tuple(i for i, p in enumerate(params.PARAMS) if p.step == 0.0)
        groups: list[Group] = []
        start = 0
        for i, p in enumerate(params.PARAMS):
            if p.step > 0.0:
                groups.append(Group(i, start, _levels(p)))
                start += len(groups[-1].levels)
        self.groups: tuple[Group, ...] = tuple(groups)
        self.n_categorical = start
        self._cont = np.array(self.continuous, dtype=np.intp)
        self._low = params.MINIMA[self._cont]
        self._span = params.MAXIMA[self._cont] - params.MINIMA[self._cont]
        # Decoding is on the live path: a padded (groups x widest) grid of logit columns (padding points
        # at an appended -inf column) and a matching table of level values turn 11 per-group argmaxes
        # into three array operations.
        width = max(g.size for g in groups)
        self._cat = np.array([g.param for g in groups], dtype=np.intp)
        self._grid = np.full((len(groups), width), start, dtype=np.intp)
        self._level_table = np.zeros((len(groups), width))
        for k, g in enumerate(groups):
            self._grid[k, : g.size] = np.arange(g.start, g.start + g.size)
            self._level_table[k, : g.size] = g.levels

    @property
    def n_continuous(self) -> int:
        """Number of continuous columns."""
        return len(self.continuous)

    @property
    def n_features(self) -> int:
        """Total columns of an encoded patch."""
        return self.n_continuous + self.n_categorical

    @property
    def group_sizes(self) -> list[int]:
        """Levels per stepped parameter, in column order."""
        return [g.size for g in self.groups]

    def layout(self) -> dict[str, Any]:
        """A plain description stored in checkpoints, to refuse a model trained on another layout."""
        return {
            "names": list(params.NAMES),
            "continuous": list(self.continuous),
            "groups": [[g.param, list(g.levels)] for g in self.groups],
        }

    # ------------------------------------------------------------ encoding

    def _check(self, values: npt.ArrayLike) -> FloatArray:
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != params.N_PARAMS:
            raise ValueError(f"expected patches of shape (N, {params.N_PARAMS}), got {v.shape}")
        return v

    def scale_continuous(self, values: npt.ArrayLike) -> FloatArray:
        """Continuous parameters scaled to [0, 1], shape ``(N, n_continuous)``."""
        v = self._check(values)
        return np.clip((v[:, self._cont] - self._low) / self._span, 0.0, 1.0)

    def classes(self, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The level index of each stepped parameter, shape ``(N, n_groups)``."""
        v = self._check(values)
        out = np.empty((v.shape[0], len(self.groups)), dtype=np.int64)
        for k, g in enumerate(self.groups):
            spec = params.PARAMS[g.param]
            idx = np.rint((v[:, g.param] - spec.minimum) / spec.step)
            out[:, k] = np.clip(idx, 0, g.size - 1).astype(np.int64)
        return out

    def encode(self, values: npt.ArrayLike) -> FloatArray:
        """Features ``(N, n_features)``: scaled continuous columns, then one-hot blocks."""
        v = self._check(values)
        out = np.zeros((v.shape[0], self.n_features), dtype=np.float64)
        out[:, : self.n_continuous] = self.scale_continuous(v)
        cls = self.classes(v)
        rows = np.arange(v.shape[0])
        for k, g in enumerate(self.groups):
            out[rows, self.n_continuous + g.start + cls[:, k]] = 1.0
        return out

    # ------------------------------------------------------------ decoding

    def decode(self, continuous01: npt.ArrayLike, logits: npt.ArrayLike) -> FloatArray:
        """Valid patches from model outputs: continuous in [0, 1], categorical logits (or probabilities).

        Categoricals take their most likely level (exact level values);
        continuous values are rescaled inside their ranges, so every row equals
        ``params.clamp_vector(row)``.
        """
        c = np.asarray(continuous01, dtype=np.float64)
        lg = np.asarray(logits, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != self.n_continuous or lg.shape != (c.shape[0], self.n_categorical):
            raise ValueError(
                f"expected ({len(c)}, {self.n_continuous}) and ({len(c)}, {self.n_categorical}) arrays, "
                f"got {c.shape} and {lg.shape}"
            )
        out = np.empty((c.shape[0], params.N_PARAMS), dtype=np.float64)
        # Scaled back from [0, 1] inside [min, max], continuous values need no further clamping.
        out[:, self._cont] = self._low + np.clip(c, 0.0, 1.0) * self._span
        padded = np.concatenate([lg, np.full((lg.shape[0], 1), -np.inf)], axis=1)[:, self._grid]
        choice = np.argmax(padded, axis=2)
        out[:, self._cat] = self._level_table[np.arange(len(self.groups)), choice]
        return out


def clamp_batch(values: npt.ArrayLike) -> FloatArray:
    """``params.clamp_vector`` for every row of an ``(N, 41)`` array, vectorised."""
    v = np.clip(np.asarray(values, dtype=np.float64), params.MINIMA, params.MAXIMA)
    for i, p in enumerate(params.PARAMS):
        if p.step > 0.0:
            # Halves round up, as in ParamSpec.clamp and amSynth's roundf.
            v[:, i] = p.minimum + np.floor((v[:, i] - p.minimum) / p.step + 0.5) * p.step
    return v
