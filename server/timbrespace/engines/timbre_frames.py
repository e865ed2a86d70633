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
    #: Per note, its own timbre point instead of ``base`` (a finger's, see ``/touch``), or None for
    #: ``base``; empty: every note at ``base``.
    own: tuple[FloatArray | MapPoints | None, ...] = ()


@dataclass(frozen=True)
class FrameResult:
    """Per note: a wavetable, scaled noise gains, f0; and the base code used (a decoded map point),
    and each note's own code where it has one (``FrameRequest.own``)."""

    base: FloatArray
    tables: npt.NDArray[np.float32]
    noise: FloatArray
    f0: FloatArray
    own: tuple[FloatArray | None, ...] = ()


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
        maps: dict[MapPoints, FloatArray] = {}  # each learned-map point decoded once per batch

        def code(base: FloatArray | MapPoints) -> FloatArray:
            if isinstance(base, tuple):
                if base not in maps:
                    maps[base] = map_mean(self.space, base)
                return maps[base]
            return base

        bases = [code(r.base) for r in inputs]
        owns = [tuple(None if o is None else code(o) for o in r.own) for r in inputs]
        z = np.concatenate([
            np.stack([(b if o is None else o) + r.offset for o in own]) if own
            else np.repeat((b + r.offset)[None, :], len(r.pitch), axis=0)
            for b, own, r in zip(bases, owns, inputs, strict=True)])
        pitch = np.concatenate([r.pitch for r in inputs])
        amps, noise = self.space.frames(z, pitch, np.concatenate([r.frame for r in inputs]),
                                        np.concatenate([r.velocity for r in inputs]))
        f0 = 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)
        tables = harmonic_tables(amps, f0, self.sample_rate, self.table_size)
        noise *= np.concatenate([r.noise_gain for r in inputs])[:, None]
        out: list[FrameResult] = []
        i = 0
        for b, own, r in zip(bases, owns, inputs, strict=True):
            j = i + len(r.pitch)
            out.append(FrameResult(b, tables[i:j], noise[i:j], f0[i:j], own))
            i = j
        return out
