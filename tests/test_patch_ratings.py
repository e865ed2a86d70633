"""The rating head: the ratings file it learns from, and what it learns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.patch_ratings import FORMAT, RatingsError, fit_head, load

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


def test_the_head_recovers_a_linear_rating_and_reports_how_well() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 10))
    truth = rng.standard_normal((10, 7))
    # Six qualities follow the descriptors exactly; the last is noise the descriptors cannot predict.
    y = 50 + 5 * (x @ truth)
    y[:, 6] = 50 + 10 * rng.standard_normal(200)
    w, report = fit_head(x, y, ridge=1e-3)
    spread = y.std(axis=0)
    assert w.shape == (10, 7)
    # Outputs are ratings over their spread: the fitted weights are the true ones divided by it.
    np.testing.assert_allclose(w[:, :6], 5 * truth[:, :6] / spread[:6], rtol=1e-3, atol=1e-3)
    r2 = report["cv_r2"]
    assert all(r2[q] > 0.99 for q in QUALITIES[:6])
    assert r2[QUALITIES[6]] < 0.2
    assert report["presets"] == 200


def test_the_head_refuses_too_few_presets_or_bad_shapes() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_head(np.zeros((5, 3)), np.zeros((5, 7)))
    with pytest.raises(ValueError, match="expected features"):
        fit_head(np.zeros((50, 3)), np.zeros((50, 6)))
    with pytest.raises(ValueError, match="ridge"):
        fit_head(np.zeros((50, 3)), np.zeros((50, 7)), ridge=0.0)
