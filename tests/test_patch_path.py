"""Paths between presets: a route where the sound changes least, and stepped parameters that keep to the
ends' levels and switch once (issue 18)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from timbrespace.engines.patch import PatchEngine, PatchPathDecode
from timbrespace.models import patch_path
from timbrespace.models.patch_codec import PatchCodec
from timbrespace.models.patch_space import PatchSpace
from timbrespace.patch import params
from timbrespace.patch.library import PresetLibrary
from timbrespace.render import LocalLink
from timbrespace.session.context import local

from conftest import assert_same_patch

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "patch-vae" / "patch-vae.pt"
CODEC = PatchCodec()
STEPPED = np.array([g.param for g in CODEC.groups])
LINE = patch_path.Route.line([0.0, 0.0], [1.0, 1.0])


@pytest.fixture(scope="module")
def space() -> PatchSpace:
    return PatchSpace.load(SHIPPED, device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def library() -> PresetLibrary:
    return PresetLibrary(["/usr/share/amsynth/banks"])


def _logits(points: int, group: int, rows: list[tuple[float, ...]]) -> np.ndarray:
    """Logits along a line: zero everywhere but ``group``'s block, which takes ``rows`` (one per
    point, the first levels' logits) stretched over ``points``."""
    g = CODEC.groups[group]
    lg = np.zeros((points, CODEC.n_categorical))
    for other in CODEC.groups:  # every other group prefers its first level the whole way
        lg[:, other.start] = 1.0
    lg[:, g.start : g.start + g.size] = 0.0
    where = np.linspace(0, len(rows) - 1, points).round().astype(int)
    for i, k in enumerate(where):
        lg[i, g.start : g.start + len(rows[k])] = rows[k]
    return lg


def test_a_level_neither_end_has_is_never_taken() -> None:
    wave = next(k for k, g in enumerate(CODEC.groups) if params.PARAMS[g.param].name == "osc1_waveform")
    # Sine at the start, saw at the end, noise strongly preferred in between, and a flicker back to sine.
    rows = [(3, 0, 0, 0), (1, 0, 0, 5), (0, 0, 1, 5), (2, 0, 1, 0), (0, 0, 3, 0)]
    plan = patch_path.plan(CODEC, LINE, _logits(65, wave, rows))
    a = np.linspace(0, 1, 101)
    osc1 = plan.apply(np.zeros((101, params.N_PARAMS)), a)[:, CODEC.groups[wave].param]
    assert set(osc1) == {0.0, 2.0}  # sine and saw only
    assert osc1[0] == 0.0 and osc1[-1] == 2.0
    assert np.count_nonzero(np.diff(osc1)) == 1  # one switch, however the preference flickers
    # Where the ends agree the level holds, whatever the decoder prefers half way.
    others = np.delete(np.arange(len(CODEC.groups)), wave)
    held = plan.apply(np.zeros((101, params.N_PARAMS)), a)[:, STEPPED[others]]
    assert np.all(held == held[0])


def test_the_switch_is_where_the_preference_turns() -> None:
    g = 0
    # The target's level is preferred from 70 % of the way on (a smooth crossing).
    along = np.linspace(0, 1, 65)
    lg = _logits(65, g, [(1, 0)])
    lg[:, CODEC.groups[g].start + 1] = (along - 0.7) * 10 + 1
    plan = patch_path.plan(CODEC, patch_path.Route.line([0.0, 0.0], [1.0, 0.0]), lg)
    assert plan.switch[g] == pytest.approx(0.7, abs=1 / 64)
    assert plan.blend([0.25]) == pytest.approx(np.array([[0.25, 0.0]]))


def test_bad_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="expected logits"):
        patch_path.plan(CODEC, LINE, np.zeros((1, CODEC.n_categorical)))
    plan = patch_path.plan(CODEC, LINE, np.zeros((5, CODEC.n_categorical)))
    with pytest.raises(ValueError, match="one patch per alpha"):
        plan.apply(np.zeros((3, params.N_PARAMS)), [0.0, 1.0])


def test_shipped_map_paths_start_and_end_at_the_ends_and_switch_once(space: PatchSpace,
                                                                      library: PresetLibrary) -> None:
    rng = np.random.default_rng(4)
    alphas = np.linspace(0, 1, 33)
    for _ in range(12):
        a, b = rng.choice(len(library), size=2, replace=False)
        z = space.encode_latent(library.values()[[a, b]])
        path = space.decode_path(space.path_plan(z[0], z[1]), alphas)
        ends = space.decode_latent(z)
        # Continuous parameters are the decoder's at the blended point, so the ends are the ends' decodes.
        continuous_only = path[[0, -1]].copy()
        continuous_only[:, STEPPED] = ends[:, STEPPED]
        assert_same_patch(continuous_only, ends)
        _, logits = space._outputs(z)
        for g in CODEC.groups:
            block = np.sort(logits[:, g.start : g.start + g.size], axis=1)
            # The ends' levels are their most likely ones (unless two are tied within float rounding,
            # where a batch of another size may pick the other).
            decisive = block[:, -1] - block[:, -2] > 1e-4
            assert np.all(path[[0, -1], g.param][decisive] == ends[decisive, g.param])
            column = path[:, g.param]
            assert set(column) <= {column[0], column[-1]}
            assert np.count_nonzero(np.diff(column)) <= 1


def test_engine_sweeps_alpha_along_one_plan(space: PatchSpace, library: PresetLibrary) -> None:
    engine = PatchEngine(space, library, LocalLink(), block_period=256 / 48000, clock=lambda: 0.0)
    handle = engine.handlers()
    handle["/source"](("BriansBank16/ForPractice3",), local())
    handle["/target"](("BriansBank19/LookingFor03",), local())
    heard, where = [], []
    for alpha in np.linspace(0, 1, 17):
        handle["/alpha"]((float(alpha),), local())
        engine.flush()
        heard.append(engine.values.copy())
        where.append(engine.xy)
    z = space.encode_latent(library.values()[[library.resolve("BriansBank16/ForPractice3"),
                                              library.resolve("BriansBank19/LookingFor03")]])
    # /latent's feedback is where the route is, not where the straight line would be.
    route = space.path_plan(z[0], z[1]).route
    assert len(route.points) > 2
    assert np.array(where) == pytest.approx(space.latent_to_unit(route.at(np.linspace(0, 1, 17))), abs=1e-9)
    # The same patches, whatever batch sizes the float kernels saw.
    assert_same_patch(np.array(heard), space.decode_path(space.path_plan(z[0], z[1]), np.linspace(0, 1, 17)))
    for column in np.array(heard)[:, STEPPED].T:
        assert np.count_nonzero(np.diff(column)) <= 1


def test_a_route_point_landing_late_does_not_undo_a_newer_latent(space: PatchSpace,
                                                                    library: PresetLibrary) -> None:
    engine = PatchEngine(space, library, LocalLink(), block_period=256 / 48000, clock=lambda: 0.0)
    handle = engine.handlers()
    handle["/source"](("BriansBank16/ForPractice3",), local())
    handle["/target"](("BriansBank19/LookingFor03",), local())
    handle["/alpha"]((0.5,), local())
    engine.flush()
    landed = engine.xy
    handle["/alpha"]((0.25,), local())
    placed = engine._placed  # the worker took this /alpha's job before the /latent came
    handle["/latent"]((0.375, 0.125), local())
    engine._along(0.0, placed, (engine.values.copy(), np.zeros(2)))
    assert engine.xy == (0.375, 0.125) and landed != engine.xy
    engine.flush()
    assert engine.xy == (0.375, 0.125)


def test_the_engines_plan_memory_is_bounded(space: PatchSpace) -> None:
    path = PatchPathDecode(space)
    rng = np.random.default_rng(5)
    for _ in range(3 * PatchPathDecode.PLANS):
        s, t = rng.normal(size=(2, 2))
        values, z = path.run([(s, t, 0.5)])[0]
        assert values.shape == (params.N_PARAMS,) and z.shape == (2,)
    assert len(path._plans) == PatchPathDecode.PLANS
