"""Rating training presets for the patch map's head: a larger count extends a file, never redoes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from timbrespace.evaluate import rate_presets
from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_ratings import FORMAT, load
from timbrespace.patch.library import PresetLibrary

FACTORY = Path("/usr/share/amsynth/banks")


@pytest.fixture
def banks() -> list[str]:
    from timbrespace.evaluate import timbral
    from timbrespace.fidelity import reference

    if not FACTORY.is_dir() or not reference.available() or not timbral.available():
        pytest.skip("amSynth's factory banks and DSSI plugin and the timbral models are needed (the command "
                    "checks for them)")
    return [str(FACTORY)]


def test_a_larger_count_draws_the_same_presets_first(banks: list[str]) -> None:
    library = PresetLibrary(banks)
    small, large = rate_presets.draw(library, 5, 0, 0.1), rate_presets.draw(library, 9, 0, 0.1)
    assert large[:5].tolist() == small.tolist() and len(set(large.tolist())) == 9


def test_extend_keeps_what_the_file_rated_and_rates_nothing_twice(banks: list[str], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    library = PresetLibrary(banks)
    names = [library.qualified_name(int(i)) for i in rate_presets.draw(library, 3, 0, 0.1)]
    out = tmp_path / "ratings.json"
    # Numbers no timbral model would give, so a re-rating would show.
    doc = {"format": FORMAT, "qualities": list(QUALITIES), "banks": banks, "seed": 0, "val_fraction": 0.1,
           "note": 60, "seconds": rate_presets.DURATION,
           "presets": [{"name": n, "ratings": [1000.0 + k] * 7} for k, n in enumerate(names[:2])],
           "silent": names[2:]}
    out.write_text(json.dumps(doc))
    assert rate_presets.main(["--out", str(out), "--count", "3", "--extend"]) == 0
    assert "rated 0 presets; 3 kept" in capsys.readouterr().err
    back = load(out)
    assert back.names == names[:2] and back.values[:, 0].tolist() == [1000.0, 1001.0]
    assert json.loads(out.read_text())["silent"] == names[2:]


def test_extend_refuses_a_file_of_another_draw_and_leaves_it_alone(banks: list[str], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ratings.json"
    doc = {"format": FORMAT, "qualities": list(QUALITIES), "banks": banks, "seed": 7, "val_fraction": 0.1,
           "note": 60, "seconds": rate_presets.DURATION, "presets": [{"name": "A/x", "ratings": [1.0] * 7}]}
    out.write_text(json.dumps(doc))
    before = out.read_text()
    assert rate_presets.main(["--out", str(out), "--count", "3", "--extend"]) == 2
    err = capsys.readouterr().err
    assert "seed is 7" in err and "--extend" in err
    assert out.read_text() == before
