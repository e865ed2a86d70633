"""How much of the unit square plays like an instrument: the patch map's coverage figure.

Table I and the paths only play points where presets encode; a finger goes anywhere on the pad. Over
a grid of the unit square (the cells :func:`timbrespace.mapping.grid_points` lays out, what
``docs/map.png`` draws) each decoded patch is judged three ways:

* it *holds a note*: its amplitude sustain, the level the voice's envelope holds a key at, is at
  least :data:`HOLDS_NOTE` (below it a held key dies away);
* its brightness: the spectral centroid of a note on the project's voice
  (:func:`timbrespace.mapping.patch_centroids`), and whether it is over :data:`BRIGHT_HZ`;
* it *sounds like some preset*: its descriptor (:mod:`timbrespace.models.patch_hearing`: the
  log-mel spectrum and loudness envelope of C4 on amSynth, each standardised by its spread over the
  presets) is no further from the nearest preset's than :data:`LIKE_QUANTILE` of the presets are from
  their own nearest other preset. A silent cell is like no preset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.fidelity.compare import pairwise_rms
from timbrespace.mapping import grid_points, patch_centroids
from timbrespace.models import patch_hearing
from timbrespace.models.patch_sound_training import HOLDS_NOTE
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params

FloatArray = npt.NDArray[np.float64]
BRIGHT_HZ = 5000.0  # a note's centroid over this is hiss more than pitch (A3's fundamental is 220 Hz)
LIKE_QUANTILE = 0.5  # a cell is like a preset when as near one as the median preset is to its nearest other
DESCRIPTOR_FLOOR = 1.0  # dB: a band that never moves over the presets is not made to matter


def _nearest(a: FloatArray, b: FloatArray, exclude_self: bool = False) -> FloatArray:
    """For each row of ``a``, the RMS distance to the nearest row of ``b`` (another row, ``exclude_self``)."""
    d = pairwise_rms(a, b)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    result: FloatArray = d.min(axis=1)
    return result


def likeness(cells: FloatArray, presets: FloatArray) -> dict[str, Any]:
    """Nearest-preset distances of the cells' descriptors against the presets' own nearest-neighbour distances.

    ``cells`` and ``presets`` are descriptors ``(N, F)``; rows of NaN are silent (a silent cell is like
    no preset, silent presets are left out).
    """
    p = presets[np.all(np.isfinite(presets), axis=1)]
    if len(p) < 2:
        raise ValueError(f"likeness needs at least two presets that render sound, got {len(p)}")
    mean, scale = p.mean(axis=0), np.maximum(p.std(axis=0), DESCRIPTOR_FLOOR)
    ps = (p - mean) / scale
    heard = np.all(np.isfinite(cells), axis=1)
    cell_d = np.full(len(cells), np.inf)
    if heard.any():
        cell_d[heard] = _nearest((cells[heard] - mean) / scale, ps)
    preset_d = _nearest(ps, ps, exclude_self=True)
    threshold = float(np.quantile(preset_d, LIKE_QUANTILE))
    return {"like_preset_share": float(np.mean(cell_d <= threshold)),
            "cell_nearest_median": float(np.median(cell_d)),
            "preset_nearest_median": float(np.median(preset_d)),
            "threshold": threshold, "presets_heard": len(p)}


def coverage(space: PatchSpace, grid: int, presets: FloatArray | None = None,
             log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The square's coverage over a ``grid`` x ``grid`` lattice; ``presets`` ``(N, 41)`` for the likeness.

    Without ``presets`` (or without amSynth's plugin) the likeness part is left out (None).
    """
    if grid < 1:
        raise ValueError(f"coverage grid {grid}: expected at least 1 cell per side")
    patches = space.decode_unit(grid_points(grid))
    sustain = patches[:, params.INDEX["amp_sustain"]]
    log(f"coverage: {grid}x{grid} cells, centroids on the project's voice")
    centroid = patch_centroids(patches)
    out: dict[str, Any] = {
        "grid": grid, "holds_note": HOLDS_NOTE, "bright_hz": BRIGHT_HZ,
        "holds_note_share": float(np.mean(sustain >= HOLDS_NOTE)),
        "bright_share": float(np.mean(centroid > BRIGHT_HZ)),
        "median_centroid": float(np.median(centroid)), "median_sustain": float(np.median(sustain)),
        "sustain": sustain.reshape(grid, grid).tolist(), "centroid": centroid.reshape(grid, grid).tolist(),
        "likeness": None,
    }
    if presets is not None:
        from timbrespace.fidelity import reference

        if reference.available():
            log(f"coverage: hearing {len(presets)} presets and {grid * grid} cells on amSynth")
            out["likeness"] = {**likeness(patch_hearing.hear(patches), patch_hearing.hear(presets)),
                               "quantile": LIKE_QUANTILE}
    return out


def rows(c: dict[str, Any]) -> list[tuple[str, str]]:
    """The coverage figures as (figure, value) rows for the text and Markdown reports."""
    out = [(f"cells that hold a note (amplitude sustain >= {c['holds_note']:g})",
            f"{100 * c['holds_note_share']:.0f}%"),
           (f"cells with a centroid over {c['bright_hz'] / 1000:g} kHz", f"{100 * c['bright_share']:.0f}%"),
           ("median centroid", f"{c['median_centroid']:,.0f} Hz"),
           ("median amplitude sustain", f"{c['median_sustain']:.2f}")]
    lk = c.get("likeness")
    if lk:
        out += [(f"cells that sound like some preset (as near one as {100 * lk['quantile']:.0f}% of presets are to "
                 "their nearest)", f"{100 * lk['like_preset_share']:.0f}%"),
                ("distance to the nearest preset, median: cells / presets",
                 f"{lk['cell_nearest_median']:.2f} / {lk['preset_nearest_median']:.2f}")]
    return out
