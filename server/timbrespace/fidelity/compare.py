"""The project's voice against amSynth: one patch's four measures, and factory-set identification.

Both sides get the same patch and the same notes.  Note times are rounded to the
render block (256 samples), because ``render_patch`` applies notes at block
boundaries while amSynth takes them at their sample: on block boundaries both
start every note at the same sample.

Identification: every preset is rendered both ways; a preset is identified when
the project's render is nearer (log-mel RMS distance) to amSynth's render of the
same preset than to amSynth's render of any other.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.fidelity import features, reference

SR, BLOCK = 48000, 256
Note = reference.Note


def on_block(t: float, sample_rate: int = SR, block: int = BLOCK) -> float:
    """``t`` rounded to the nearest block boundary (seconds)."""
    return round(t * sample_rate / block) * block / sample_rate


def _phrase() -> tuple[tuple[Note, ...], float]:
    """Three 0.25 s notes, then a held two-note chord: 1.5 s in all (on block boundaries)."""
    q = on_block
    notes: list[Note] = [(q(0.25 * i), q(0.25 * (i + 1)), p, 100) for i, p in enumerate((60, 64, 67))]
    notes += [(q(0.75), q(1.25), 55, 100), (q(0.75), q(1.25), 64, 90)]
    return tuple(notes), 1.5


PHRASE, PHRASE_S = _phrase()


def render_both(values: npt.ArrayLike, notes: Sequence[Note], duration: float
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(project, amSynth) renders of one patch, trimmed to the same length."""
    from timbrespace.audio.offline import render_patch  # pyo boots only when needed

    q = [(on_block(a), None if b is None else on_block(b), p, v) for a, b, p, v in notes]
    theirs = reference.render(values, q, duration, SR, BLOCK)
    ours = render_patch(values, q, duration, float(SR), BLOCK)
    n = min(len(ours), len(theirs))
    return ours[:n], theirs[:n]


@dataclass
class Comparison:
    """The four measures for one patch (project vs amSynth)."""

    name: str
    logmel_db: float  # RMS log-mel difference (dB)
    envelope_db: float  # mean |RMS envelope difference| over audible 50 ms frames (dB)
    centroid_octaves: float  # median |log2 centroid ratio| over audible frames
    f0_ours: float  # Hz, first note alone
    f0_theirs: float
    times_ours: dict[str, float] = field(default_factory=dict)  # first note's envelope timing (s)
    times_theirs: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable summary."""
        cents = 1200 * math.log2(self.f0_ours / self.f0_theirs) if self.f0_ours > 0 and self.f0_theirs > 0 else math.nan
        out = [
            f"{self.name} (project vs amSynth)",
            f"  log-mel distance      {self.logmel_db:7.2f} dB RMS",
            f"  RMS envelope          {self.envelope_db:7.2f} dB mean abs",
            f"  spectral centroid     {100 * (2 ** self.centroid_octaves - 1):7.2f} % median",
            f"  f0 (first note)       {self.f0_ours:7.2f} Hz vs {self.f0_theirs:.2f} Hz ({cents:+.1f} cents)",
        ]
        out.append("  first note alone:")
        for key, label in (("attack", "attack (s)"), ("decay", "decay (s)"), ("release", "release (s)"),
                           ("peak_db", "peak (dB)"), ("sustain_db", "held level (dB)")):
            out.append(f"    {label:<19} {self.times_ours[key]:7.3f} vs {self.times_theirs[key]:.3f}")
        return out


def compare(values: npt.ArrayLike, name: str = "patch", notes: Sequence[Note] = PHRASE,
            duration: float = PHRASE_S) -> Comparison:
    """Render ``values`` both ways and measure; f0 and timings on the first note of ``notes``."""
    ours, theirs = render_both(values, notes, duration)
    t_on, t_off = on_block(notes[0][0]), on_block(notes[0][1] if notes[0][1] is not None else duration)
    first = slice(round(t_on * SR), round(t_off * SR))
    # Envelope timing needs the note alone: render it once more, released, with room for its release.
    single = [(notes[0][0], notes[0][1], notes[0][2], notes[0][3])]
    ours1, theirs1 = render_both(values, single, max(duration, t_off + 1.0))
    return Comparison(
        name=name,
        logmel_db=features.logmel_distance(ours, theirs, SR),
        envelope_db=features.envelope_error_db(ours, theirs, SR),
        centroid_octaves=features.centroid_error_octaves(ours, theirs, SR),
        f0_ours=features.f0(ours[first], SR), f0_theirs=features.f0(theirs[first], SR),
        times_ours=asdict(features.envelope_times(ours1, t_on, t_off, SR)),
        times_theirs=asdict(features.envelope_times(theirs1, t_on, t_off, SR)),
    )


# -- identification over the factory set ----------------------------------------------------


_Pair = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], bool, bool]


def _features_pair(values: npt.NDArray[np.float64]) -> _Pair:
    """Log-mel of both renders, and whether each had non-finite samples."""
    ours, theirs = render_both(values, PHRASE, PHRASE_S)
    bad = (not bool(np.isfinite(ours).all()), not bool(np.isfinite(theirs).all()))
    return features.logmel(ours, SR), features.logmel(theirs, SR), *bad


@dataclass
class Identification:
    """The factory-set figure: how often a preset's project render is nearest its own amSynth render."""

    names: list[str]
    own: npt.NDArray[np.float64]  # distance to amSynth's render of the same preset (dB)
    nearest_other: npt.NDArray[np.float64]  # to the nearest other preset's amSynth render (dB)
    between_median: float  # median distance project render vs other presets' amSynth renders (dB)
    twins: npt.NDArray[np.bool_]  # amSynth renders this preset within 0.5 dB of another's
    seconds: float
    nonfinite: tuple[list[str], list[str]] = ([], [])  # presets whose render had NaN/inf: ours, amSynth's

    @property
    def rate(self) -> float:
        """Share of presets identified."""
        return float((self.own < self.nearest_other).mean())

    @property
    def rate_distinct(self) -> float:
        """Share identified among presets amSynth itself renders distinctly (no twin)."""
        keep = ~self.twins
        return float((self.own[keep] < self.nearest_other[keep]).mean()) if keep.any() else math.nan

    @property
    def rate_finite(self) -> float:
        """Share identified among presets whose renders were finite on both sides."""
        bad = set(self.nonfinite[0]) | set(self.nonfinite[1])
        keep = np.array([n not in bad for n in self.names], dtype=bool)
        return float((self.own[keep] < self.nearest_other[keep]).mean()) if keep.any() else math.nan

    def summary(self) -> dict[str, Any]:
        """Figures for JSON and the docs."""
        missed = np.flatnonzero(self.own >= self.nearest_other)
        return {
            "presets": len(self.names), "identified": self.rate, "identified_distinct": self.rate_distinct,
            "twins": int(self.twins.sum()), "own_median_db": float(np.median(self.own)),
            "own_p90_db": float(np.percentile(self.own, 90)), "between_median_db": self.between_median,
            "ratio": float(np.median(self.own)) / self.between_median, "seconds": self.seconds,
            "identified_finite": self.rate_finite,
            "nonfinite_ours": self.nonfinite[0], "nonfinite_amsynth": self.nonfinite[1],
            "missed": [self.names[i] for i in missed],
            "worst": [(self.names[i], float(self.own[i]), float(self.nearest_other[i]))
                      for i in np.argsort(self.own - self.nearest_other)[::-1][:10]],
        }


def pairwise_rms(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """RMS distance between rows of ``a`` and rows of ``b`` (||x-y||^2 = x.x + y.y - 2 x.y)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.asarray(np.sqrt(np.maximum(d2, 0.0) / a.shape[1]), dtype=np.float64)


def identify(values: npt.NDArray[np.float64], names: Sequence[str], workers: int | None = None,
             progress: bool = False) -> Identification:
    """Render every preset (rows of ``values``) both ways and identify each one."""
    t0 = time.perf_counter()
    workers = workers or max(1, min(len(values), os.cpu_count() or 1))
    rows = [np.asarray(v, dtype=np.float64) for v in values]
    if workers == 1:
        pairs = [_features_pair(v) for v in rows]
    else:
        # spawn: each worker gets its own pyo (one server per process) and its own amSynth worker
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pairs = []
            for k, pair in enumerate(pool.imap(_features_pair, rows, chunksize=4)):
                pairs.append(pair)
                if progress and (k + 1) % 100 == 0:
                    print(f"  {k + 1}/{len(rows)} presets rendered ({time.perf_counter() - t0:.0f} s)", flush=True)
    frames = min(min(o.shape[1], t.shape[1]) for o, t, _, _ in pairs)
    ours = np.stack([o[:, :frames].ravel() for o, _, _, _ in pairs]).astype(np.float64)
    theirs = np.stack([t[:, :frames].ravel() for _, t, _, _ in pairs]).astype(np.float64)
    bad = ([names[i] for i, p in enumerate(pairs) if p[2]], [names[i] for i, p in enumerate(pairs) if p[3]])
    d = pairwise_rms(ours, theirs)  # d[i, j]: project render of i vs amSynth's of j
    own = np.diag(d).copy()
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    off = d[np.isfinite(d)]
    ref = pairwise_rms(theirs, theirs)
    np.fill_diagonal(ref, np.inf)
    return Identification(list(names), own, nearest, float(np.median(off)), ref.min(axis=1) < 0.5,
                          time.perf_counter() - t0, bad)


def plot(result: Identification, path: Path) -> None:
    """Histogram of own vs nearest-other distances, and own vs nearest-other per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = float(np.percentile(np.concatenate([result.own, result.nearest_other]), 99.5))
    bins = np.linspace(0.0, top, 60)
    ax1.hist(result.own, bins, alpha=0.7, label="own preset (project vs amSynth)")
    ax1.hist(result.nearest_other, bins, alpha=0.7, label="nearest other preset")
    ax1.axvline(result.between_median, color="k", ls="--", lw=1, label="median between presets")
    ax1.set_xlabel("log-mel RMS distance (dB)")
    ax1.set_ylabel("presets")
    ax1.legend(fontsize=8)
    ax2.scatter(result.nearest_other, result.own, s=4, alpha=0.5)
    ax2.plot([0, top], [0, top], "k--", lw=1)
    ax2.set_xlim(0, top)
    ax2.set_ylim(0, top)
    ax2.set_xlabel("to nearest other preset's amSynth render (dB)")
    ax2.set_ylabel("to own amSynth render (dB)")
    s = result.summary()
    fig.suptitle(f"{s['presets']} amSynth factory presets: {100 * s['identified']:.1f}% identified, "
                 f"own median {s['own_median_db']:.2f} dB vs between {s['between_median_db']:.1f} dB")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
