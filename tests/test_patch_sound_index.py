"""The sound index: presets placed where the map sounds like them, stored in the checkpoint, looked up live."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from timbrespace.evaluate.timbral import QUALITIES
from timbrespace.models.checkpoint import load_checkpoint, read_sidecar
from timbrespace.models.patch_ratings import FORMAT, RatingHead, RatingsError, fit_head
from timbrespace.models.patch_sound_index import Anchor, SoundIndex, build, lattice, preset_keys
from timbrespace.models.patch_space import PatchSpace
from timbrespace.models.train_patch_vae import _split, train
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary

pytestmark = pytest.mark.numeric

FACTORY = Path("/usr/share/amsynth/banks")
F = 3  # descriptor columns in the small cases


def _patch(cutoff: float) -> np.ndarray:
    v = np.array([p.default for p in params.PARAMS], dtype=np.float64)
    v[params.INDEX["filter_cutoff"]] = cutoff
    return params.clamp_vector(v)


def test_the_lattice_is_the_cells_centres_row_by_row() -> None:
    pts = lattice(np.array([0.0, -1.0]), np.array([2.0, 1.0]), 2)
    np.testing.assert_allclose(pts, [[0.5, -0.5], [1.5, -0.5], [0.5, 0.5], [1.5, 0.5]])


def _head(columns: int) -> RatingHead:
    """A head that reads each quality straight off the descriptor's first column (over its spread: 1)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 10.0, (200, columns))
    head, _ = fit_head(x, np.repeat(x[:, :1], 7, axis=1))
    return head


def test_presets_go_to_the_point_whose_predicted_qualities_are_nearest() -> None:
    head = _head(F)
    points = lattice(np.zeros(2), np.ones(2), 4)
    # The lattice point at latent x sounds like descriptor column 0 = 10 x: 1.25, 3.75, 6.25, 8.75.
    on_lattice = np.stack([10 * points[:, 0], np.zeros(16), np.zeros(16)], axis=1)
    library = np.stack([_patch(c) for c in (0.13, 0.61, 0.95)])
    heard = np.array([[1.3, 0, 0], [6.1, 0, 0], [9.5, 0, 0]])
    index = build(points, on_lattice, library, heard, head)
    z, found = index.lookup(library)
    assert found.all()
    np.testing.assert_allclose(z[:, 0], [0.125, 0.625, 0.875])
    # A patch the library did not hold is not found; the space falls back to the encoder for it.
    _, other = index.lookup(_patch(0.4)[None])
    assert not other.any()


def test_silent_points_are_never_chosen_and_silent_presets_never_placed() -> None:
    head = _head(F)
    points = lattice(np.zeros(2), np.ones(2), 4)
    on_lattice = np.stack([10 * points[:, 0], np.zeros(16), np.zeros(16)], axis=1)
    on_lattice[points[:, 0] < 0.25] = np.nan  # the lattice's first column renders silence
    library = np.stack([_patch(c) for c in (0.1, 0.2, 0.9)])
    heard = np.array([[np.nan, 0, 0], [np.nan, np.nan, np.nan], [0.0, 0, 0]])
    index = build(points, on_lattice, library, heard, head)
    assert np.isnan(index.qualities[:, 0]).sum() == 4
    z, found = index.lookup(library)
    assert found.tolist() == [False, False, True]
    # The nearest heard point to a quality of 0 is the first one that sounds, x = 0.375.
    assert z[2, 0] == 0.375
    with pytest.raises(ValueError, match="a descriptor per point"):
        build(points, on_lattice[:3], library, heard, head)


def test_rated_points_stand_in_for_the_prediction() -> None:
    head = _head(F)
    points = lattice(np.zeros(2), np.ones(2), 4)
    on_lattice = np.stack([10 * points[:, 0], np.zeros(16), np.zeros(16)], axis=1)
    on_lattice[0] = np.nan  # a point silent where training hears it stays silent, rated or not
    library = np.stack([_patch(0.13)])
    heard = np.array([[1.3, 0.0, 0.0]])
    # Predicted, the preset sounds like the left column; rated, the point at (0.875, 0.875) sounds exactly
    # like it (the head's own prediction for the preset, so on the same scale), and the silent point too.
    measured = np.full((16, 7), np.nan)
    far = int(np.flatnonzero((points == [0.875, 0.875]).all(axis=1))[0])
    measured[[far, 0]] = head.predict(heard)[0]
    index = build(points, on_lattice, library, heard, head, measured=measured)
    assert index.lookup(library)[0][0].tolist() == [0.875, 0.875]
    np.testing.assert_array_equal(index.qualities[far], measured[far])
    assert np.isnan(index.qualities[0]).all()
    with pytest.raises(ValueError, match="measured qualities of shape"):
        build(points, on_lattice, library, heard, head, measured=measured[:3])


def test_the_anchor_breaks_near_ties_towards_where_the_encoder_places_a_preset() -> None:
    head = _head(F)
    points = lattice(np.zeros(2), np.ones(2), 4)
    # Every column of the lattice sounds alike (quality 5 on each row); the top row a little nearer 5.2.
    on_lattice = np.zeros((16, F))
    on_lattice[:, 0] = np.where(points[:, 1] > 0.8, 5.2, 5.0)
    library = np.stack([_patch(0.3)])
    heard = np.array([[5.2, 0.0, 0.0]])
    by_ear = build(points, on_lattice, library, heard, head).lookup(library)[0][0]
    assert by_ear[1] == 0.875  # the top row: the nearest quality, wherever the encoder put the preset
    # The encoder put it at the bottom-right corner: a quality mismatch of 0.2 (over a spread near 2.9)
    # weighs less than crossing the square, so the preset goes to the corner's cell.
    anchor = Anchor(np.array([[1.0, 0.0]]), np.zeros(2), np.ones(2), 0.5)
    z = build(points, on_lattice, library, heard, head, anchor).lookup(library)[0][0]
    assert z.tolist() == [0.875, 0.125]
    # A weight of 0 is placing by ear alone.
    zero = Anchor(np.array([[1.0, 0.0]]), np.zeros(2), np.ones(2), 0.0)
    assert build(points, on_lattice, library, heard, head, zero).lookup(library)[0][0].tolist() == by_ear.tolist()
    # A far better match still wins over the anchor: a point that sounds like the preset against ones
    # that do not.
    on_lattice[:, 0] = np.where(points[:, 1] > 0.8, 5.2, 0.0)
    assert build(points, on_lattice, library, heard, head, anchor).lookup(library)[0][0][1] == 0.875


def test_the_index_round_trips_through_a_weights_only_checkpoint() -> None:
    pts = lattice(np.zeros(2), np.ones(2), 3)
    index = SoundIndex(pts, np.arange(63.0).reshape(9, 7), _head(F),
                       {preset_keys(_patch(0.5)[None])[0]: np.array([0.25, 0.75])})
    buffer = io.BytesIO()
    torch.save(index.to_metadata({"grid": 3}), buffer)
    back = SoundIndex.from_metadata(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    np.testing.assert_array_equal(back.qualities, index.qualities)
    assert back.head is not None and back.head.gamma == index.head.gamma  # type: ignore[union-attr]
    z, found = back.lookup(_patch(0.5)[None])
    assert found[0] and z[0].tolist() == [0.25, 0.75]
    broken = index.to_metadata({})
    broken["qualities"] = torch.ones(9, 6)
    with pytest.raises(ValueError, match="do not fit"):
        SoundIndex.from_metadata(broken)
    with pytest.raises(ValueError, match="lacks"):
        SoundIndex.from_metadata({"points": broken["points"]})
    # An index written before the kernel head (a linear head as one array) keeps its placements.
    old = {**index.to_metadata({}), "head": torch.ones(56, 7), "mean": torch.zeros(56), "scale": torch.ones(56)}
    legacy = SoundIndex.from_metadata(old)
    assert legacy.head is None and legacy.lookup(_patch(0.5)[None])[1][0]


SMALL = {"epochs": 4, "hidden": (32,), "warmup_epochs": 2, "proxy_epochs": 10, "progress": False,
         "square_weight": 0.0, "index_grid": 4}


def _ratings(path: Path, names: list[str]) -> Path:
    # Numbers, not timbral ratings: what is tested is where they go, not what they say.
    rng = np.random.default_rng(0)
    doc = {"format": FORMAT, "qualities": list(QUALITIES),
           "presets": [{"name": n, "ratings": rng.uniform(0, 100, 7).round(3).tolist()} for n in names]}
    path.write_text(json.dumps(doc))
    return path


def test_training_places_every_library_preset_by_ear(one_bank: Path, tmp_path: Path) -> None:
    library = PresetLibrary([one_bank])
    train_idx, val_idx = _split(library.factory_count, 0.1, 0)
    rated = _ratings(tmp_path / "r.json", [library.qualified_name(int(i)) for i in train_idx[:40]])
    cache = tmp_path / "heard.npz"
    a = train(tmp_path / "a", banks=[one_bank], ratings=rated, hearing_cache=cache, **SMALL)  # type: ignore[arg-type]
    b = train(tmp_path / "b", banks=[one_bank], ratings=rated, hearing_cache=cache, **SMALL)  # type: ignore[arg-type]
    assert read_sidecar(a) == read_sidecar(b)  # seeded: the index too
    meta = load_checkpoint(a).metadata
    report = meta["sound_index"]["report"]
    assert report["grid"] == 4 and report["rating_head"]["presets"] == 40
    space = PatchSpace.load(a, device="cpu")
    assert space.index is not None
    values = library.values()
    z = space.encode_latent(values)
    # Every preset that sounds sits on a lattice point of the square, validation presets included.
    grid = lattice(space.low, space.high, 4)
    on_grid = np.isclose(z[:, None, :], grid[None]).all(axis=2).any(axis=1)
    _, found = space.index.lookup(values)
    assert found.sum() == report["placed"] >= len(values) - 2  # silent presets are not placed
    assert on_grid[found].all()
    assert found[val_idx].sum() >= len(val_idx) - 1
    # A patch the library did not hold: the encoder's posterior mean.
    odd = values[0].copy()
    odd[params.INDEX["filter_cutoff"]] = 0.123456
    np.testing.assert_array_equal(space.encode_latent(odd), space.posterior_mean(odd[None]))
    # Without ratings: no index, the encoder places everything, as before.
    plain = train(tmp_path / "c", banks=[one_bank], hearing_cache=cache, **SMALL)  # type: ignore[arg-type]
    assert load_checkpoint(plain).metadata["sound_index"] is None
    assert PatchSpace.load(plain, device="cpu").index is None


def test_a_rated_validation_preset_is_refused(one_bank: Path, tmp_path: Path) -> None:
    library = PresetLibrary([one_bank])
    train_idx, val_idx = _split(library.factory_count, 0.1, 0)
    names = [library.qualified_name(int(i)) for i in [*train_idx[:20], val_idx[0]]]
    with pytest.raises(RatingsError, match="not in the training split"):
        train(tmp_path / "a", banks=[one_bank], ratings=_ratings(tmp_path / "r.json", names), **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index_grid"):
        train(tmp_path / "b", banks=[one_bank], ratings=tmp_path / "r.json", **{**SMALL, "index_grid": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index_anchor"):
        train(tmp_path / "b", banks=[one_bank], ratings=tmp_path / "r.json", **{**SMALL, "index_anchor": -1.0})  # type: ignore[arg-type]


def test_a_rated_lattice_teaches_the_head_and_places_by_real_qualities(one_bank: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from timbrespace.evaluate import rate_lattice, timbral
    from timbrespace.models.patch_lattice_ratings import order

    if not timbral.available():
        pytest.skip("the timbral models rate the lattice")
    library = PresetLibrary([one_bank])
    train_idx, _ = _split(library.factory_count, 0.1, 0)
    rated = _ratings(tmp_path / "r.json", [library.qualified_name(int(i)) for i in train_idx[:40]])
    cache = tmp_path / "heard.npz"
    first = train(tmp_path / "a", banks=[one_bank], ratings=rated, hearing_cache=cache, **SMALL)  # type: ignore[arg-type]
    lattice_file = tmp_path / "lattice.json"
    assert rate_lattice.main(["--model", str(first), "--out", str(lattice_file), "--count", "3"]) == 0
    # A longer run keeps the three ratings (numbers no timbral model gives, so a re-rating would show).
    doc = json.loads(lattice_file.read_text())
    for k, p in enumerate(doc["points"]):
        p["ratings"] = [1000.0 + k] * 7
    lattice_file.write_text(json.dumps(doc))
    capsys.readouterr()
    assert rate_lattice.main(["--model", str(first), "--out", str(lattice_file), "--count", "4", "--extend"]) == 0
    assert "rated 1 points" in capsys.readouterr().err
    doc = json.loads(lattice_file.read_text())
    assert doc["count"] == 4 and [p["ratings"][0] for p in doc["points"][:3]] == [1000.0, 1001.0, 1002.0]
    rated_points = len(doc["points"])
    # The same decoder again (same seed): its lattice decodes to the rated patches, which the index takes.
    second = train(tmp_path / "b", banks=[one_bank], ratings=rated, hearing_cache=cache,  # type: ignore[arg-type]
                   lattice_ratings=lattice_file, **SMALL)
    report = load_checkpoint(second).metadata["sound_index"]["report"]
    assert report["lattice_rated"] == rated_points and report["rating_head"]["presets"] == 40 + rated_points
    space = PatchSpace.load(second, device="cpu")
    assert space.index is not None
    spread = np.array(list(report["rating_head"]["spread"].values()))
    first_point = int(order(4)[0])
    np.testing.assert_allclose(space.index.qualities[first_point] * spread, [1000.0] * 7, rtol=1e-6)
    # A model that has no index has no lattice to rate: a clear error, nothing written.
    plain = train(tmp_path / "c", banks=[one_bank], hearing_cache=cache, **SMALL)  # type: ignore[arg-type]
    assert rate_lattice.main(["--model", str(plain), "--out", str(tmp_path / "x.json")]) == 2
    assert "no sound index" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    assert rate_lattice.main(["--model", str(plain), "--out", str(tmp_path / "x.json"), "--count", "0"]) == 2
