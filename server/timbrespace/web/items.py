"""``/play/items.json``: what the page draws and offers that the OSCQuery namespace does not say.

- ``instruments``: the timbre engine's instrument names (what ``/source``, ``/target`` and
  ``/corners`` take), and ``instrument_points``: where each one's mixture mean sits on the learned
  map (empty without one), so the page can label the regions under the fingers, and
  ``instrument_regions``: those regions, the learned map cut into :data:`REGION_CELLS` cells a
  side, each the index of the instrument the model hears most there and how surely (its
  posterior, 2 decimals), rows from y = 0 up (empty lists without a learned map);
- ``preset_points``: where each preset sits on the patch map, in ``/patch/list``'s order (the page
  pages the names in over OSC), so the page draws the presets as the picture behind the pad.

Points are ``[x, y]`` in the unit square, y up, as ``/latent`` takes them. They are computed when
the server starts (tens of milliseconds for the factory banks: paid before the ready line, not on
the event loop while people play), and a preset saved later (``/patch/save``) is placed at the
next request, alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from timbrespace.engines.base import Engine
from timbrespace.engines.patch import PatchEngine
from timbrespace.engines.timbre import TimbreEngine
from timbrespace.models.timbre_map import region_grid

__all__ = ["PageItems"]

#: Decimals of a point: a thousandth of a 4K screen is finer than a finger.
DECIMALS = 4
#: Cells a side of the regions' picture: a few screen pixels each on a tablet, smoothed when drawn.
REGION_CELLS = 48


def _points(xy: npt.ArrayLike) -> list[list[float]]:
    return [[round(float(x), DECIMALS), round(float(y), DECIMALS)] for x, y in np.asarray(xy, np.float64)]


class PageItems:
    """Callable giving the JSON object of ``/play/items.json`` for ``engines`` (one layer's: every
    layer runs the same models and presets)."""

    def __init__(self, engines: Mapping[str, Engine]) -> None:
        self.engines = engines
        self._timbre = self._timbre_items()
        self._presets: list[list[float]] = []
        self.preset_points()

    def __call__(self) -> dict[str, Any]:
        return {**self._timbre, "preset_points": self.preset_points()}

    def _timbre_items(self) -> dict[str, Any]:
        engine = self.engines.get("timbre")
        out: dict[str, Any] = {"instruments": [], "instrument_points": [],
                               "instrument_regions": {"index": [], "posterior": []}}
        if isinstance(engine, TimbreEngine):
            space = engine.space
            out["instruments"] = list(space.instruments)
            if space.learned_map is not None:
                means = torch.as_tensor(space.means, dtype=torch.float32, device=space.device)
                out["instrument_points"] = _points(space.learned_map.place(means).cpu().numpy())
                index, best = region_grid(space.model, space.learned_map, REGION_CELLS)
                out["instrument_regions"] = {"index": index.tolist(),
                                             "posterior": np.round(best.double().numpy(), 2).tolist()}
        return out

    def preset_points(self) -> list[list[float]]:
        """Each preset's place on the patch map, those added since the last call placed now."""
        engine = self.engines.get("patch")
        if not isinstance(engine, PatchEngine):
            return []
        n, done = len(engine.library), len(self._presets)
        if n > done:
            space = engine.space
            added = engine.library.values()[done:]
            self._presets += _points(space.latent_to_unit(space.encode_latent(added)))
        return self._presets
