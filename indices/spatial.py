"""Where memories happened: a uniform grid over one tier's positions.

Positions are (x, y) or (x, y, z); a 2-D position lies on the plane z = 0. Rows are bucketed by
grid cell, so a radius or box query visits only the cells it overlaps, and the k nearest grow a
search radius ring by ring: both sublinear in the number of positions. Answers are exact: the
grid only picks candidates, a distance test on the true coordinates decides.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

MAX_CELLS_VISITED = 200_000  # a query covering more cells than this scans every position instead


class SpatialGrid:
    def __init__(self, cell_size: float = 10.0):
        if not (cell_size > 0 and math.isfinite(cell_size)):
            raise ValueError(f"cell_size must be a positive number, got {cell_size!r}")
        self.cell_size = cell_size
        self._cells: dict[tuple[int, int, int], set[int]] = defaultdict(set)
        self._where: dict[int, tuple[int, int, int]] = {}
        self._points = np.zeros((0, 3), dtype=np.float64)
        self._low = np.full(3, np.inf)  # a box around every position ever set (it never shrinks:
        self._high = np.full(3, -np.inf)  # a stale, larger box only costs nearest() a ring more)

    def __len__(self) -> int:
        return len(self._where)

    def nbytes(self) -> int:
        """Memory held, estimated: the points, and per placed row its cell entries (dict and set slots)."""
        return self._points.nbytes + 200 * len(self._where)

    def set(self, row: int, position: tuple[float, ...] | None) -> None:
        self.drop(row)
        if position is None:
            return
        if row >= len(self._points):
            grown = np.zeros((max(row + 1, 2 * len(self._points), 64), 3))
            grown[: len(self._points)] = self._points
            self._points = grown
        point = (position[0], position[1], position[2] if len(position) > 2 else 0.0)
        self._points[row] = point
        self._low = np.minimum(self._low, point)
        self._high = np.maximum(self._high, point)
        cell = self._cell(point)
        self._cells[cell].add(row)
        self._where[row] = cell

    def to_arrays(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(points, placed) of rows 0..n-1, for indices/snapshot.py."""
        points = np.zeros((n, 3))
        placed = np.zeros(n, dtype=bool)
        rows = np.array([row for row in self._where if row < n], dtype=np.int64)
        if len(rows):
            points[rows] = self._points[rows]
            placed[rows] = True
        return points, placed

    def from_arrays(self, points: np.ndarray, placed: np.ndarray) -> None:
        """Fill an empty grid: cells computed for every row at once, then grouped (what set()
        does row by row, a tenth of the time on a restart's million rows)."""
        rows = np.flatnonzero(placed)
        if not len(rows):
            return
        self._points = np.zeros((max(len(points), 64), 3))
        self._points[: len(points)] = points
        chosen = points[rows]
        self._low, self._high = chosen.min(axis=0), chosen.max(axis=0)
        cells = np.floor(chosen / self.cell_size).astype(np.int64)
        order = np.lexsort((cells[:, 2], cells[:, 1], cells[:, 0]))
        cells, rows = cells[order], rows[order]
        starts = np.flatnonzero(np.any(cells[1:] != cells[:-1], axis=1)) + 1
        bounds = [0, *starts.tolist(), len(rows)]
        keys = [tuple(cell) for cell in cells[bounds[:-1]].tolist()]
        row_list = rows.tolist()
        for key, start, stop in zip(keys, bounds[:-1], bounds[1:]):
            members = row_list[start:stop]
            self._cells[key] = set(members)
            self._where.update(dict.fromkeys(members, key))

    def position(self, row: int) -> tuple[float, float, float] | None:
        if row not in self._where:
            return None
        x, y, z = self._points[row].tolist()
        return x, y, z

    def drop(self, row: int) -> None:
        cell = self._where.pop(row, None)
        if cell is not None:
            bucket = self._cells[cell]
            bucket.discard(row)
            if not bucket:
                del self._cells[cell]

    def within(self, center: tuple[float, float, float], radius: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, distances) of the positions at most ``radius`` from ``center``, nearest first."""
        rows = self._candidates(center, radius)
        if not len(rows):
            return rows, np.empty(0)
        distances = np.linalg.norm(self._points[rows] - np.asarray(center), axis=1)
        keep = distances <= radius
        rows, distances = rows[keep], distances[keep]
        order = np.lexsort((rows, distances))
        return rows[order], distances[order]

    def points(self, rows: np.ndarray) -> np.ndarray:
        """The (x, y, z) positions of placed rows."""
        return self._points[rows]

    def box(self, low: tuple[float, float, float], high: tuple[float, float, float]) -> np.ndarray:
        """Rows whose position lies in the axis-aligned box [low, high]."""
        center = ((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, (low[2] + high[2]) / 2)
        half = math.dist(low, high) / 2
        rows = self._candidates(center, half)
        if not len(rows):
            return rows
        points = self._points[rows]
        inside = np.all((points >= np.asarray(low)) & (points <= np.asarray(high)), axis=1)
        return rows[inside]

    def nearest(
        self, center: tuple[float, float, float], k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, distances) of the k positions nearest ``center`` among the rows ``mask`` allows,
        and any others exactly as far as the k-th (ties: the caller decides which come first).

        Widens the radius until k allowed positions lie within it: any position outside that
        radius is farther than all of them, so the answer is exact.
        """
        if not self._where or k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        radius = self.cell_size
        while True:
            rows, distances = self.within(center, radius)
            if mask is not None and len(rows):
                keep = mask[rows]
                rows, distances = rows[keep], distances[keep]
            if len(rows) > k:
                end = int(np.searchsorted(distances, distances[k - 1], side="right"))
                return rows[:end], distances[:end]
            if len(rows) == k or self._covers_all(center, radius):
                return rows, distances
            radius *= 2

    def _covers_all(self, center: tuple[float, float, float], radius: float) -> bool:
        c = np.asarray(center)
        farthest = np.maximum(np.abs(self._low - c), np.abs(self._high - c))
        return bool(np.linalg.norm(farthest) <= radius)

    def _candidates(self, center: tuple[float, float, float], radius: float) -> np.ndarray:
        if not self._where:
            return np.empty(0, dtype=np.int64)
        # the query's box, cut to the box around the positions (2-D data: one layer of cells)
        low = self._cell(tuple(max(c - radius, lo) for c, lo in zip(center, self._low)))
        high = self._cell(tuple(min(c + radius, hi) for c, hi in zip(center, self._high)))
        if any(lo > hi for lo, hi in zip(low, high)):
            return np.empty(0, dtype=np.int64)
        spans = [h - lo + 1 for lo, h in zip(low, high)]
        if math.prod(spans) > min(MAX_CELLS_VISITED, 4 * len(self._cells) + 64):
            # the query covers more cells than hold positions: walking the occupied cells is cheaper
            found = [row for cell, rows in self._cells.items()
                     if all(lo <= c <= h for c, lo, h in zip(cell, low, high)) for row in rows]
        else:
            cells = self._cells
            found = []
            for x in range(low[0], high[0] + 1):
                for y in range(low[1], high[1] + 1):
                    for z in range(low[2], high[2] + 1):
                        bucket = cells.get((x, y, z))
                        if bucket:
                            found.extend(bucket)
        return np.array(sorted(found), dtype=np.int64)

    def _cell(self, point: tuple[float, ...]) -> tuple[int, int, int]:
        size = self.cell_size
        return (math.floor(point[0] / size), math.floor(point[1] / size), math.floor(point[2] / size))
