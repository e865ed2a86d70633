"""Routes across the map where the sound changes least (issue 18): the way ``/alpha`` takes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from timbrespace.mapping import grid_points
from timbrespace.models.patch_path import Route
from timbrespace.models.patch_route import LENGTH_COST, Router
from timbrespace.models.patch_space import PatchSpace

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "patch-vae" / "patch-vae.pt"
LOW, HIGH = np.array([-2.0, -1.0]), np.array([2.0, 3.0])
GRID = 16


def _lattice(qualities: np.ndarray) -> Router:
    return Router(LOW + grid_points(GRID) * (HIGH - LOW), qualities, LOW, HIGH)


def _latent(x: float, y: float) -> np.ndarray:
    return LOW + np.array([x, y]) * (HIGH - LOW)


def _wall(gap_at: int | None) -> np.ndarray:
    """Qualities equal everywhere but a wall of another sound down the middle column, open at row ``gap_at``."""
    q = np.zeros((GRID, GRID, 7))
    q[:, GRID // 2, :] = 5.0
    if gap_at is not None:
        q[gap_at, GRID // 2, :] = 0.0
    return q.reshape(GRID * GRID, 7)


def test_the_route_goes_round_a_change_of_sound_through_its_gap() -> None:
    router = _lattice(_wall(gap_at=13))
    source, target = _latent(0.2, 0.3), _latent(0.8, 0.3)
    route = router.route(source, target)
    assert route.source == pytest.approx(source) and route.target == pytest.approx(target)
    cells = [router.cell(p) for p in route.points[1:-1]]
    middle = [c for c in cells if c % GRID == GRID // 2]
    assert middle == [13 * GRID + GRID // 2]  # crosses the wall only at its gap
    # Alpha runs by length in the square from the source to the target.
    assert route.along[0] == 0.0 and route.along[-1] == 1.0 and np.all(np.diff(route.along) >= 0)
    unit = (route.points - LOW) / (HIGH - LOW)
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(unit, axis=0), axis=1))])
    assert route.along == pytest.approx(length / length[-1], abs=1e-12)
    assert route.at([0.0, 0.5, 1.0])[[0, 2]] == pytest.approx(np.stack([source, target]))


def test_where_the_sound_is_alike_everywhere_the_route_is_the_straight_way() -> None:
    router = _lattice(np.zeros((GRID * GRID, 7)))
    route = router.route(_latent(0.1, 0.1), _latent(0.9, 0.9))
    unit = (route.points - LOW) / (HIGH - LOW)
    assert np.abs(unit[:, 0] - unit[:, 1]).max() < 1e-9  # the diagonal, cell by cell
    # A wall with no gap is crossed where crossing it is shortest (straight through).
    walled = _lattice(_wall(gap_at=None)).route(_latent(0.2, 8.5 / GRID), _latent(0.8, 8.5 / GRID))
    assert np.ptp(walled.points[:, 1]) == pytest.approx(0.0, abs=1e-9)


def test_silent_points_are_never_crossed_and_cut_off_ends_go_straight() -> None:
    q = np.zeros((GRID, GRID, 7))
    q[1:, GRID // 2, :] = np.nan  # a silent wall, open at row 0
    router = _lattice(q.reshape(-1, 7))
    route = router.route(_latent(0.2, 0.9), _latent(0.8, 0.9))
    assert all(not router.silent[router.cell(p)] for p in route.points[1:-1])
    assert min(router.cell(p) // GRID for p in route.points[1:-1]) == 0
    q[0, GRID // 2, :] = np.nan  # closed: no way joins the two sides
    closed = _lattice(q.reshape(-1, 7)).route(_latent(0.2, 0.9), _latent(0.8, 0.9))
    assert len(closed.points) == 2
    same_cell = router.route(_latent(0.51 / GRID, 0.5 / GRID), _latent(0.52 / GRID, 0.5 / GRID))
    assert len(same_cell.points) == 2


def test_a_lattice_that_is_not_one_is_refused() -> None:
    points = LOW + grid_points(GRID) * (HIGH - LOW)
    with pytest.raises(ValueError, match="square lattice"):
        Router(points[:-1], np.zeros((GRID * GRID - 1, 7)), LOW, HIGH)
    with pytest.raises(ValueError, match="cells' centres"):
        Router(points[::-1], np.zeros((GRID * GRID, 7)), LOW, HIGH)
    with pytest.raises(ValueError, match="rise from 0 to 1"):
        Route(np.zeros((3, 2)), np.array([0.0, 0.7, 0.5]))


def _cost(router: Router, cells: list[int], qualities: np.ndarray) -> float:
    """What the router's graph charges for a way through ``cells`` (each an 8-neighbour of the last)."""
    total = 0.0
    for a, b in itertools.pairwise(cells):
        dy, dx = abs(a // router.grid - b // router.grid), abs(a % router.grid - b % router.grid)
        assert max(dy, dx) == 1
        total += float(np.sqrt(((qualities[a] - qualities[b]) ** 2).mean())) + LENGTH_COST * float(np.hypot(dx, dy))
    return total


def test_on_the_shipped_map_no_straight_line_changes_the_sound_less_than_the_route() -> None:
    space = PatchSpace.load(SHIPPED, device="cpu", num_threads=1)
    assert space.router is not None and space.index is not None
    q = space.index.qualities
    rng = np.random.default_rng(7)
    shorter = 0
    for _ in range(20):
        s, t = space.unit_to_latent(rng.uniform(0.05, 0.95, size=(2, 2)))
        route = space.path_plan(s, t).route
        on_route = [space.router.cell(p) for p in route.points[1:-1]]
        dense = Route.line(s, t).at(np.linspace(0, 1, 2049))
        line = [space.router.cell(p) for p in dense]
        line = [c for i, c in enumerate(line) if i == 0 or c != line[i - 1]]
        if len(on_route) < 2:
            assert line[0] == line[-1]
            continue
        assert on_route[0] == line[0] and on_route[-1] == line[-1]
        route_cost, line_cost = _cost(space.router, on_route, q), _cost(space.router, line, q)
        assert route_cost <= line_cost + 1e-9
        shorter += route_cost < 0.9 * line_cost
    assert shorter >= 10  # the map is not flat: most lines cross sounds a route goes round
