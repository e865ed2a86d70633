"""The map's own lattice, rated: keys that survive float rounding, coarse-to-fine order, strict loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_lattice_ratings import FORMAT, KEY_HEX, RESOLUTION, lattice_keys, load, order
from timbrespace.models.patch_ratings import RatingsError
from timbrespace.patch import params


def _patch(cutoff: float) -> np.ndarray:
    v = params.DEFAULTS.copy()
    v[params.INDEX["filter_cutoff"]] = cutoff
    return params.clamp_vector(v)


def test_a_key_ignores_float_rounding_and_tells_audible_differences_apart() -> None:
    span = params.spec("filter_cutoff").maximum - params.spec("filter_cutoff").minimum
    base = _patch(0.5 + 0.3 * RESOLUTION * span)  # well inside a key's step, away from its edges
    nudged = base.copy()
    nudged[params.INDEX["filter_cutoff"]] += 1e-7 * span  # what another CPU's float kernels can add
    moved = _patch(0.5 + 2.3 * RESOLUTION * span)
    a, b, c = lattice_keys(np.stack([base, nudged, moved]))
    assert a == b != c and len(a) == KEY_HEX


def test_the_order_is_coarse_to_fine_and_covers_every_point_once() -> None:
    grid = 6
    o = order(grid)
    assert sorted(o.tolist()) == list(range(grid * grid))
    row, col = np.divmod(o, grid)
    even, odd = grid // 2 * (grid // 2), grid // 2 * (grid // 2)
    assert np.all((row[:even] % 2 == 0) & (col[:even] % 2 == 0))
    assert np.all((row[even : even + odd] % 2 == 1) & (col[even : even + odd] % 2 == 1))
    assert o[:even].tolist() == sorted(o[:even].tolist())  # row by row within a level


def _write(path: Path, points: object, **extra: object) -> Path:
    path.write_text(json.dumps({"format": FORMAT, "qualities": list(QUALITIES), "points": points, **extra}))
    return path


def test_a_file_gives_each_patch_its_ratings_and_nothing_to_others(tmp_path: Path) -> None:
    rated, silent, other = _patch(0.2), _patch(0.5), _patch(0.8)
    k_rated, k_silent = lattice_keys(np.stack([rated, silent]))
    back = load(_write(tmp_path / "l.json", [{"key": k_rated, "ratings": list(range(7))}], silent=[k_silent]))
    known = back.known(np.stack([rated, silent, other]))
    assert known[0].tolist() == list(range(7)) and np.isnan(known[1:]).all()
    assert len(back.sha256) == 64


@pytest.mark.parametrize(("points", "extra", "message"), [
    ([{"key": "ab", "ratings": [1] * 7}], {}, "points\\[0\\]: expected"),
    ([{"key": "a" * KEY_HEX, "ratings": [1] * 6}], {}, "points\\[0\\]: expected"),
    ([{"key": "a" * KEY_HEX, "ratings": [1, 2, 3, 4, 5, 6, float("nan")]}], {}, "points\\[0\\]: expected"),
    ({"key": 1}, {}, "expected lists"),
    ([], {"silent": [3]}, "silent\\[0\\]"),
    ([], {"format": "timbrespace-preset-ratings/1"}, "format"),
])
def test_a_bad_file_is_refused_by_name(tmp_path: Path, points: object, extra: dict[str, object],
                                       message: str) -> None:
    path = _write(tmp_path / "bad.json", points, **extra)
    with pytest.raises(RatingsError, match=message):
        load(path)
    with pytest.raises(RatingsError, match="rate_lattice"):
        load(tmp_path / "missing.json")
