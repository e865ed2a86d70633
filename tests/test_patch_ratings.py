"""The rating head: the ratings file it learns from, and what it learns."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_ratings import FORMAT, RatingHead, RatingsError, fit_head, load

pytestmark = pytest.mark.numeric


def _write(path: Path, presets: list[dict[str, object]], **extra: object) -> Path:
    doc = {"format": FORMAT, "qualities": list(QUALITIES), "presets": presets, **extra}
    path.write_text(json.dumps(doc))
    return path


def test_a_ratings_file_loads_with_its_hash(tmp_path: Path) -> None:
    p = _write(tmp_path / "r.json", [{"name": "A/one", "ratings": [10, 20, 30, 40, 50, 60, 70]},
                                     {"name": "A/two", "ratings": [0, 100, 0.5, 1, 2, 3, -6]}])
    r = load(p)
    assert r.names == ["A/one", "A/two"]
    assert r.values.shape == (2, 7) and r.values[1, 1] == 100.0
    assert len(r.sha256) == 64


@pytest.mark.parametrize(("doc", "message"), [
    ("not json", "cannot read"),
    ({"format": "other", "qualities": list(QUALITIES), "presets": []}, "format"),
    ({"format": FORMAT, "qualities": ["depth"], "presets": []}, "qualities"),
    ({"format": FORMAT, "qualities": list(QUALITIES), "presets": []}, "non-empty"),
    ({"format": FORMAT, "qualities": list(QUALITIES), "presets": [{"name": "A/x", "ratings": [1, 2]}]},
     r"presets\[0\]"),
    ({"format": FORMAT, "qualities": list(QUALITIES), "presets": [{"name": "A/x", "ratings": [1] * 6 + ["loud"]}]},
     "finite numbers"),
    ({"format": FORMAT, "qualities": list(QUALITIES), "presets": [{"name": "A/x", "ratings": [1] * 7}] * 2},
     "twice"),
])
def test_a_bad_ratings_file_is_refused_by_name(tmp_path: Path, doc: object, message: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(RatingsError, match=message) as e:
        load(p)
    assert str(p) in str(e.value)


def test_the_head_learns_a_curved_rating_and_reports_how_well() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (300, 4))
    # Five qualities are smooth, curved functions of the descriptors (as the timbral models' logs and
    # thresholds make them); the sixth is a constant; the last is noise the descriptors cannot predict.
    y = np.stack([50 + 20 * np.tanh(2 * x[:, 0]), 40 + 15 * x[:, 1] ** 2, 30 + 10 * x[:, 0] * x[:, 2],
                  60 + 8 * np.sin(2 * x[:, 3]), 50 + 10 * x[:, 1], np.full(300, 42.0),
                  50 + 10 * rng.standard_normal(300)], axis=1)
    head, report = fit_head(x, y)
    r2 = report["cv_r2"]
    assert all(r2[q] > 0.9 for q in QUALITIES[:5]), r2
    assert r2[QUALITIES[6]] < 0.2
    assert report["presets"] == 300 and report["gamma"] > 0 and report["alpha"] > 0
    # Predictions are ratings over their spread (at least a point: the constant quality's is 1).
    fresh = rng.uniform(-0.9, 0.9, (50, 4))
    truth = np.stack([50 + 20 * np.tanh(2 * fresh[:, 0]), 40 + 15 * fresh[:, 1] ** 2], axis=1)
    spread = np.array([report["spread"][q] for q in QUALITIES])
    assert spread[5] == 1.0
    pred = head.predict(fresh) * spread
    # Within a fifth of each quality's spread over the presets (R² over 0.96), on patches the head never
    # saw; a linear head cannot follow the second quality at all (it is even in the descriptor).
    assert (np.sqrt(np.mean((pred[:, :2] - truth) ** 2, axis=0)) < 0.2 * spread[:2]).all()
    assert np.isnan(r2[QUALITIES[5]])  # a quality every preset shares: nothing to explain
    np.testing.assert_allclose(pred[:, 5], 42.0, atol=0.5)
    # A silent render (NaN descriptor) predicts NaN, and the other rows are unchanged by it.
    mixed = head.predict(np.vstack([fresh[:2], np.full((1, 4), np.nan)]))
    assert np.isnan(mixed[2]).all() and np.allclose(mixed[:2] * spread, pred[:2])


def test_the_head_round_trips_through_a_weights_only_checkpoint() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3))
    head, _ = fit_head(x, 50 + 10 * np.tanh(x @ rng.standard_normal((3, 7))))
    buffer = io.BytesIO()
    torch.save(head.to_metadata(), buffer)
    back = RatingHead.from_metadata(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    np.testing.assert_array_equal(back.predict(x), head.predict(x))
    broken = head.to_metadata()
    broken["dual"] = torch.ones(3, 7)
    with pytest.raises(ValueError, match="do not fit"):
        RatingHead.from_metadata(broken)
    with pytest.raises(ValueError, match="lacks"):
        RatingHead.from_metadata({"support": broken["support"]})
    with pytest.raises(ValueError, match=r"expected descriptors \(N, 3\)"):
        head.predict(np.zeros((2, 4)))


def test_the_head_refuses_too_few_presets_bad_shapes_or_silence() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_head(np.zeros((5, 3)), np.zeros((5, 7)))
    with pytest.raises(ValueError, match="expected features"):
        fit_head(np.zeros((50, 3)), np.zeros((50, 6)))
    x = np.ones((50, 3))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_head(x, np.zeros((50, 7)))
