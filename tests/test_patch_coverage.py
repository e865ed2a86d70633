"""The patch map's coverage figure: the whole square, not only where presets encode, and that it can fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from timbrespace.evaluate import patch_coverage
from timbrespace.evaluate.patch_report import BRIGHT_TARGET, HOLDS_TARGET
from timbrespace.fidelity import reference
from timbrespace.mapping import grid_points
from timbrespace.models.patch_space import PatchSpace, default_checkpoint
from timbrespace.models.train_patch_vae import latent_bounds
from timbrespace.patch.library import PresetLibrary

needs_map = pytest.mark.skipif(not default_checkpoint().is_file(), reason="no shipped patch-vae checkpoint")
needs_amsynth = pytest.mark.skipif(not reference.available(),
                                   reason="amSynth's DSSI plugin is not installed (make deps installs it)")


def test_a_cell_is_like_a_preset_only_when_as_near_one_as_the_presets_are_to_each_other() -> None:
    rng = np.random.default_rng(0)
    presets = rng.normal(0.0, 10.0, (40, 6))
    near = presets[:5] + 0.01  # a hair from a preset: nearer than any two presets are
    far = presets[:5] + 1000.0  # far outside everything the presets span
    silent = np.full((2, 6), np.nan)
    r = patch_coverage.likeness(np.concatenate([near, far, silent]), presets)
    assert r["like_preset_share"] == pytest.approx(5 / 12)  # the near ones, not the far or the silent
    assert r["cell_nearest_median"] > r["preset_nearest_median"]
    with pytest.raises(ValueError, match="at least two presets"):
        patch_coverage.likeness(near, np.full((3, 6), np.nan))


def test_the_bounds_rule_ignores_outliers_and_keeps_its_margin() -> None:
    z = np.concatenate([np.random.default_rng(1).uniform(-1.0, 1.0, (1000, 2)), [[50.0, -50.0]]])
    lo, hi = latent_bounds(z, 0.02, 0.05)
    # The 2nd to 98th percentiles of U(-1, 1) are about -0.96 and 0.96, widened by 5% of that range:
    # the one outlier at 50 does not stretch the square.
    assert lo == pytest.approx([-1.06, -1.06], abs=0.03) and hi == pytest.approx([1.06, 1.06], abs=0.03)
    assert latent_bounds(z, 0.0, 0.0)[1][0] == 50.0  # quantile 0: the extremes, outlier and all


@needs_map
@needs_amsynth
def test_the_shipped_square_plays_and_a_bad_bound_shows_in_the_figure() -> None:
    """Coverage is a figure that can fail: the same map with its square laid beyond the presets (a bad
    bound) decodes patches that miss the playable square's targets and sound like fewer presets."""
    space = PatchSpace.load(default_checkpoint(), device="cpu", num_threads=1)
    library = PresetLibrary(space.metadata["data"]["factory_dirs"])
    presets = library.values()[:: max(1, len(library) // 64)]
    good = patch_coverage.coverage(space, 6, presets)
    span = space.high - space.low
    space.low, space.high = space.high + 4.0 * span, space.high + 6.0 * span  # a square beside the presets'
    bad = patch_coverage.coverage(space, 6, presets)
    assert good["grid"] == 6 and len(good["sustain"]) == 6 and len(good["centroid"][0]) == 6

    def playable(c: dict[str, Any]) -> bool:
        return bool(c["holds_note_share"] >= HOLDS_TARGET and c["bright_share"] <= BRIGHT_TARGET)

    assert playable(good), good  # the shipped map's promise (docs/patch-map.md, "Coverage")
    assert not playable(bad), bad
    assert bad["likeness"]["like_preset_share"] < good["likeness"]["like_preset_share"]
    rows = dict(patch_coverage.rows(good))
    assert rows["median centroid"].endswith(" Hz") and len(rows) == 6


def test_grid_points_are_cell_centres_row_by_row() -> None:
    xy = grid_points(2)
    assert xy.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    with pytest.raises(ValueError, match="at least 1"):
        patch_coverage.coverage(PatchSpace.__new__(PatchSpace), 0)
