"""The way ``/alpha`` crosses the map: the route between two points along which the sound changes least.

The straight line between two placements crosses whatever lies between them, and two presets that
sound alike can be placed with other sounds in between, so the line leaves their sound and comes
back. The sound index knows the seven qualities at every point of its lattice (rated where the
lattice was rated, predicted elsewhere); a :class:`Router` takes the shortest way over the lattice's
8-neighbour graph, a step costing the change of those qualities (root mean square, each over its
spread) plus a small cost for its length, from the cell holding the source to the one holding the
target. Latent geodesics under a decoder's metric (Arvanitidis, Hansen and Hauberg, "Latent space
oddity", 2018) are the same idea with the parameters' metric; here the metric is the sound's.
"""

from __future__ import annotations

from math import isqrt

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from timbrespace.models.patch_path import Route

FloatArray = npt.NDArray[np.float64]
#: What a step costs for its length, per cell, in the qualities' spreads: enough that a detour
#: through equal sounds costs more than the straight way (and ties go straight), small against an
#: audible change of any quality.
LENGTH_COST = 0.1
_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (dy, dx): each undirected neighbour pair once


class Router:
    """Routes over a ``grid`` x ``grid`` lattice of the square (latent ``points`` at the cells' centres, row
    by row in y) whose ``qualities`` ``(grid * grid, 7)`` are known; NaN rows (silent points) are never
    crossed."""

    def __init__(self, points: npt.ArrayLike, qualities: npt.ArrayLike, low: npt.ArrayLike,
                 high: npt.ArrayLike) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        q = np.asarray(qualities, dtype=np.float64)
        self.low, self.high = np.asarray(low, np.float64).reshape(2), np.asarray(high, np.float64).reshape(2)
        grid = isqrt(len(self.points))
        if grid < 2 or grid * grid != len(self.points) or q.shape[0] != len(self.points) or q.ndim != 2:
            raise ValueError(f"expected a square lattice of points with a row of qualities each, got "
                             f"{self.points.shape} points and {q.shape} qualities")
        self.grid = grid
        cells = np.floor(self._unit(self.points) * grid).astype(int)
        if not np.array_equal(cells[:, 1] * grid + cells[:, 0], np.arange(grid * grid)):
            raise ValueError("the lattice's points are not the cells' centres row by row in y")
        self.silent: npt.NDArray[np.bool_] = np.logical_not(np.isfinite(q).all(axis=1))
        idx = np.arange(grid * grid).reshape(grid, grid)
        rows, cols, cost = [], [], []
        for dy, dx in _STEPS:
            x0, x1 = max(0, -dx), grid - max(0, dx)
            a = idx[: grid - dy, x0:x1].ravel()
            b = idx[dy:, x0 + dx : x1 + dx].ravel()
            keep = ~(self.silent[a] | self.silent[b])
            a, b = a[keep], b[keep]
            step = np.sqrt(((q[a] - q[b]) ** 2).mean(axis=1)) + LENGTH_COST * float(np.hypot(dx, dy))
            rows += [a, b]
            cols += [b, a]
            cost += [step, step]
        self.graph = csr_matrix((np.concatenate(cost), (np.concatenate(rows), np.concatenate(cols))),
                                shape=(grid * grid, grid * grid))

    def _unit(self, z: FloatArray) -> FloatArray:
        result: FloatArray = (z - self.low) / (self.high - self.low)
        return result

    def cell(self, z: npt.ArrayLike) -> int:
        """The lattice cell holding latent point ``z`` ``(2,)`` (a point outside the square: the nearest edge cell)."""
        c = np.clip(np.floor(self._unit(np.asarray(z, np.float64).reshape(2)) * self.grid), 0, self.grid - 1)
        return int(c[1]) * self.grid + int(c[0])

    def route(self, source: npt.ArrayLike, target: npt.ArrayLike) -> Route:
        """The route from latent ``source`` to ``target`` ``(2,)``: through the centres of the cells on the
        cheapest way, alpha running by length in the square; the straight line where the two share a
        cell, either is silent, or no way joins them."""
        s, t = np.asarray(source, np.float64).reshape(2), np.asarray(target, np.float64).reshape(2)
        a, b = self.cell(s), self.cell(t)
        if a == b or self.silent[a] or self.silent[b]:
            return Route.line(s, t)
        distance, previous = dijkstra(self.graph, indices=a, return_predecessors=True)
        if not np.isfinite(distance[b]):
            return Route.line(s, t)
        nodes = [b]
        while nodes[-1] != a:
            nodes.append(int(previous[nodes[-1]]))
        way = np.vstack([s, self.points[nodes[::-1]], t])
        return Route.through(way, self._unit(way))
