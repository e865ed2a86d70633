"""The unseen-set figures (issue 17): the shipped timbre model's own posterior on notes rendered
here, from its training SoundFont and from one it never heard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timbrespace.data import soundfont
from timbrespace.data.soundfont import DEFAULT_SOUNDFONT
from timbrespace.models.timbre_features import load_notes
from timbrespace.models.timbre_space import TimbreSpace
from timbrespace.models.timbre_unseen import unseen

pytestmark = [pytest.mark.numeric]

MODEL = Path(__file__).parents[1] / "models/timbre-gmvae/timbre-gmvae.pt"
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
# In another order than the model's, and only some of its instruments: matched by name.
INSTRUMENTS = ["trumpet", "violin", "flute"]
PITCHES = [62, 67, 72, 76]


@pytest.fixture(scope="module")
def space() -> TimbreSpace:
    if not MODEL.is_file():
        pytest.skip("no shipped timbre model")
    return TimbreSpace.load(MODEL, device="cpu", num_threads=1)


def figures(space: TimbreSpace, sf: Path, out: Path) -> dict[str, object]:
    soundfont.build(out, sf, instruments=INSTRUMENTS, pitches=PITCHES, velocities=(100,))
    notes = load_notes(out / "manifest.json", cache_dir=out / "cache")
    return unseen(space.model, list(space.instruments), notes, sf.stem)


@pytest.mark.skipif(not DEFAULT_SOUNDFONT.is_file(), reason="apt-get install fluid-soundfont-gm")
def test_the_posterior_knows_the_training_sets_instruments(space: TimbreSpace, tmp_path: Path) -> None:
    """The path itself checked where the answer is known: FluidR3's notes (the model's own
    source; its held-out instrument F1 is 0.98) are recognised, each instrument by name."""
    f = figures(space, DEFAULT_SOUNDFONT, tmp_path)
    assert f["notes"] == 12
    assert f["accuracy"] >= 0.9, f
    per = f["per_instrument"]
    assert isinstance(per, dict) and set(per) == set(INSTRUMENTS)
    confusion = np.array(f["confusion"])
    assert confusion.shape == (len(space.instruments),) * 2 and confusion.sum() == 12
    for name in INSTRUMENTS:  # the rows are the model's instruments, whatever the set's order
        assert confusion[space.instruments.index(name)].sum() == 4


@pytest.mark.skipif(not TIMGM.is_file(), reason="apt-get install timgm6mb-soundfont (the Makefile does)")
def test_an_unseen_set_is_scored_against_the_issue_targets(space: TimbreSpace, tmp_path: Path) -> None:
    f = figures(space, TIMGM, tmp_path)
    assert f["set"] == "TimGM6mb" and f["notes"] == 12
    assert 0.0 <= f["accuracy"] <= 1.0 and 0.0 <= f["macro_f1"] <= 1.0  # type: ignore[operator]
    targets = f["targets"]
    assert isinstance(targets, dict)
    assert targets["accuracy"]["met"] == (f["accuracy"] >= 0.85)  # type: ignore[operator]
    print(f"\nshipped model on TimGM6mb ({f['notes']} notes): accuracy {f['accuracy']:.2f}, {f['per_instrument']}")
