"""One frame per timbre note, batched: what the inference worker runs for the timbre engine.

A request asks for one frame for each of some notes at one timbre point (a code, or learned-map
points to decode there); every request of a tick, across engines and layers, is decoded in one
model call and turned into single-cycle wavetables and noise gains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from timbrespace.link.wavetable import harmonic_tables
from timbrespace.models.timbre_space import TimbreSpace

FloatArray = npt.NDArray[np.float64]


#: Learned-map points whose codes' mean is the timbre point (one point, or several blended).
MapPoints = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class FrameRequest:
    """Frames for some notes at one timbre point: ``base`` is a code, or learned-map points to decode."""

    base: FloatArray | MapPoints
    offset: FloatArray  # added to the base (``/z`` offsets, in code units)
    pitch: FloatArray
    frame: npt.NDArray[np.int64]
    velocity: FloatArray
    noise_gain: FloatArray  # per note: the sample-rate scale times its release fade


@dataclass(frozen=True)
class FrameResult:
    """Per note: a wavetable, scaled noise gains, f0; and the base code used (a decoded map point)."""

    base: FloatArray
    tables: npt.NDArray[np.float32]
    noise: FloatArray
    f0: FloatArray


def map_mean(space: TimbreSpace, points: MapPoints) -> FloatArray:
    """The mean of the learned map's codes at ``points``."""
    return np.asarray(np.mean([space.map_point(x, y) for x, y in points], axis=0))


@dataclass(frozen=True)
class TimbreFrames:
    """One frame per note, batched across requests: model controls to wavetables and noise gains."""

    space: TimbreSpace
    sample_rate: float
    table_size: int

    def run(self, inputs: Sequence[FrameRequest]) -> list[FrameResult]:
        """Decode every request's notes in one model call."""
        bases: list[FloatArray] = []
        maps: dict[MapPoints, FloatArray] = {}
        for r in inputs:
            if isinstance(r.base, tuple):
                if r.base not in maps:
                    maps[r.base] = map_mean(self.space, r.base)
                bases.append(maps[r.base])
            else:
                bases.append(r.base)
        z = np.concatenate([np.repeat((b + r.offset)[None, :], len(r.pitch), axis=0) for b, r in zip(bases, inputs)])
        pitch = np.concatenate([r.pitch for r in inputs])
        amps, noise = self.space.frames(z, pitch, np.concatenate([r.frame for r in inputs]),
                                        np.concatenate([r.velocity for r in inputs]))
        f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
        tables = harmonic_tables(amps, f0, self.sample_rate, self.table_size)
        noise *= np.concatenate([r.noise_gain for r in inputs])[:, None]
        out: list[FrameResult] = []
        i = 0
        for b, r in zip(bases, inputs, strict=True):
            j = i + len(r.pitch)
            out.append(FrameResult(b, tables[i:j], noise[i:j], f0[i:j]))
            i = j
        return out
