"""Everything the search paths filter and rank on, for one agent's memories in one tier.

Columns (step, type, importance) make filters numpy masks; an AttributeIndex finds the rows
whose contents satisfy attribute conditions; a VectorSet per vector kind (state, text) ranks by
similarity; a SpatialGrid answers by place. Rows are appended; a removed
memory's row becomes a tombstone, reused by nothing (rows are stable ids for FAISS). Once the
tombstones outnumber the live rows (and COMPACT_AT), the index is built again from its live rows:
STM's and IM's memories come and go, and their indices would otherwise keep a row for every
memory that ever passed through.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from embeddings.resolution import dimension, restore_one
from embeddings.text import contents_text
from indices.attributes import NO_CONTENTS, UNREADABLE, AttributeIndex, contents_of
from indices.conditions import Condition
from indices.keywords import KeywordIndex
from indices.spatial import SpatialGrid
from indices.vectors import VectorSet
from tiers.record import Embeddings

log = logging.getLogger(__name__)

TYPE_CODES = {"state": 0, "action": 1, "interaction": 2}
COMPACT_AT = 4096  # tombstones an index keeps at least before it is built again from its live rows


@dataclass(frozen=True)
class Filter:
    """Conditions on the indexed columns; None means any."""

    lo_step: int | None = None
    hi_step: int | None = None
    memory_types: tuple[str, ...] | None = None
    min_importance: float | None = None


class TierIndex:
    def __init__(self, tier: str, state_dim: int, cell_size: float, exact_limit: int,
                 attribute_paths: tuple[str, ...] | None = None):
        self.tier = tier
        self.ids: list[str | None] = []
        self.rows: dict[str, int] = {}
        self._step = np.zeros(0, dtype=np.int64)
        self._kind = np.zeros(0, dtype=np.int8)
        self._importance = np.zeros(0, dtype=np.float64)
        self._alive = np.zeros(0, dtype=bool)
        self.state = VectorSet(state_dim, exact_limit)
        self.text: VectorSet | None = None  # created with the first text vector (its size decides)
        self.space = SpatialGrid(cell_size)
        self.attributes = AttributeIndex(attribute_paths)
        self.keywords: KeywordIndex | None = None  # made by the first keyword search (with_keywords)
        self._exact_limit = exact_limit
        self._dead = 0  # tombstones

    def __len__(self) -> int:
        return len(self.rows)

    def nbytes(self) -> int:
        """Memory held, estimated: the columns, the vector sets and the grid, and per row its id
        string and map entries (on 20,000 rows with state vectors and places the whole estimate
        came within 5% of what tracemalloc counted)."""
        columns = self._step.nbytes + self._kind.nbytes + self._importance.nbytes + self._alive.nbytes
        vectors = self.state.nbytes() + (self.text.nbytes() if self.text is not None else 0)
        keywords = 0 if self.keywords is None else self.keywords.nbytes()
        return columns + vectors + self.space.nbytes() + self.attributes.nbytes() + keywords + 170 * len(self.ids)

    def upsert(self, memory_id: str, step: int, memory_type: str, importance: float,
               embeddings: Embeddings, position: tuple[float, ...] | None, contents: bytes | None = None) -> None:
        """Add or refresh a memory's row. Contents never change, so only a new row's are indexed."""
        row = self.rows.get(memory_id)
        if row is None:
            row = len(self.ids)
            self.ids.append(memory_id)
            self.rows[memory_id] = row
            self._grow(row + 1)
            data = contents_of(contents)
            self.attributes.add(row, data)
            if self.keywords is not None:
                self.keywords.add(row, text_of(data))
        self._step[row] = step
        self._kind[row] = TYPE_CODES.get(memory_type, -1)
        self._importance[row] = importance
        self._alive[row] = True
        self.state.set(row, self._vector(embeddings.state, self.state.dim, "state", memory_id))
        text = embeddings.text
        if text is not None:
            if self.text is None:
                self.text = VectorSet(dimension(text[1], text[0]), self._exact_limit)
            self.text.set(row, self._vector(text, self.text.dim, "text", memory_id))
        elif self.text is not None:
            self.text.set(row, None)
        self.space.set(row, position)

    def remove(self, memory_id: str) -> None:
        row = self.rows.pop(memory_id, None)
        if row is None:
            return
        self.ids[row] = None
        self._alive[row] = False
        self.state.drop(row)
        if self.text is not None:
            self.text.drop(row)
        if self.keywords is not None:
            self.keywords.drop(row)
        self.space.drop(row)
        self._dead += 1
        if self._dead > max(COMPACT_AT, len(self.rows)):
            self._compact()

    def _compact(self) -> None:
        """Build the index again from its live rows, renumbered (no row number outlives a query)."""
        fresh = TierIndex(self.tier, self.state.dim, self.space.cell_size, self._exact_limit)
        live = self.alive_rows()
        new_of_old = np.full(len(self.ids), -1, dtype=np.int64)
        new_of_old[live] = np.arange(len(live))
        fresh.attributes = self.attributes.renumbered(new_of_old)
        fresh.keywords = None if self.keywords is None else self.keywords.renumbered(new_of_old)
        for row in live.tolist():
            new = len(fresh.ids)
            memory_id = self.ids[row]
            fresh.ids.append(memory_id)
            fresh.rows[memory_id] = new
            fresh._grow(new + 1)
            fresh._step[new], fresh._kind[new] = self._step[row], self._kind[row]
            fresh._importance[new], fresh._alive[new] = self._importance[row], True
            fresh.state.set(new, self.state.vector(row))
            text = None if self.text is None else self.text.vector(row)
            if text is not None:
                if fresh.text is None:
                    fresh.text = VectorSet(self.text.dim, self._exact_limit)  # type: ignore[union-attr]
                fresh.text.set(new, text)
            fresh.space.set(new, self.space.position(row))
        vars(self).update(vars(fresh))

    def mask(self, where: Filter) -> np.ndarray | None:
        """Rows that pass the filter (and are alive); None when the filter has no condition, so
        an unfiltered search makes no pass over every row."""
        if where == Filter():
            return None
        n = len(self.ids)
        return self._passing(where, self._alive[:n].copy(), slice(0, n))

    def passing(self, where: Filter, rows: np.ndarray) -> np.ndarray:
        """The given rows (a place query's few) that are alive and pass the filter, in their order."""
        return rows[self._passing(where, self._alive[rows], rows)]

    def alive_rows(self) -> np.ndarray:
        return np.flatnonzero(self._alive[: len(self.ids)])

    def with_keywords(self, contents: Iterable[tuple[str, bytes | None]]) -> KeywordIndex:
        """The tier's keyword index, made now from (memory_id, contents) of its memories when it
        has none (it is kept current from then on)."""
        if self.keywords is None:
            keywords = KeywordIndex()
            for memory_id, blob in contents:
                row = self.rows.get(memory_id)
                if row is not None:
                    keywords.add(row, text_of(contents_of(blob)))
            self.keywords = keywords
        return self.keywords

    def matching(self, conditions: tuple[Condition, ...]) -> np.ndarray | None:
        """Alive rows that may satisfy the attribute conditions (the exact test on the records
        decides), in row order; None when the index cannot narrow by any of them."""
        rows = self.attributes.candidates(conditions, self.alive_rows)
        if rows is None:
            return None
        return rows[self._alive[rows]]

    def _passing(self, where: Filter, keep: np.ndarray, rows: slice | np.ndarray) -> np.ndarray:
        if where.lo_step is not None:
            keep &= self._step[rows] >= where.lo_step
        if where.hi_step is not None:
            keep &= self._step[rows] <= where.hi_step
        if where.memory_types is not None:
            keep &= _type_table(where.memory_types)[self._kind[rows] + 1]
        if where.min_importance is not None:
            keep &= self._importance[rows] >= where.min_importance
        return keep

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The whole index as arrays (indices/snapshot.py); removed rows stay as empty ids."""
        n = len(self.ids)
        points, placed = self.space.to_arrays(n)
        out = {
            "ids": np.array([m or "" for m in self.ids], dtype=str), "step": self._step[:n], "kind": self._kind[:n],
            "importance": self._importance[:n], "alive": self._alive[:n], "points": points, "placed": placed,
            **self.state.to_arrays("state"), **self.attributes.to_arrays(), "settings": np.array(self._settings()),
        }
        if self.text is not None:
            out.update(self.text.to_arrays("text"), text_dim=np.array(self.text.dim))
        return out

    def _settings(self) -> str:
        """What an index's contents depend on besides the memories: a file made with others is no use."""
        return json.dumps([self.state.dim, self.space.cell_size, self.attributes.paths])

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Fill an empty index from :meth:`to_arrays` output (ValueError: made with other settings)."""
        if "settings" not in arrays or str(arrays["settings"]) != self._settings():
            raise ValueError(f"index saved with other settings: {arrays.get('settings')}")
        ids = arrays["ids"].tolist()
        n = len(ids)
        self._grow(n)
        self.ids = [m or None for m in ids]
        self.rows = {m: row for row, m in enumerate(ids) if m}
        self._step[:n], self._kind[:n] = arrays["step"], arrays["kind"]
        self._importance[:n], self._alive[:n] = arrays["importance"], arrays["alive"]
        self.state.from_arrays("state", arrays)
        if "text_dim" in arrays:
            self.text = VectorSet(int(arrays["text_dim"]), self._exact_limit)
            self.text.from_arrays("text", arrays)
        self.space.from_arrays(arrays["points"], arrays["placed"])
        self.attributes.from_arrays(arrays)

    def steps(self, rows: np.ndarray) -> np.ndarray:
        return self._step[rows]

    def importances(self, rows: np.ndarray) -> np.ndarray:
        return self._importance[rows]

    @staticmethod
    def _vector(stored: tuple[str, bytes] | None, dim: int, kind: str, memory_id: str) -> np.ndarray | None:
        if stored is None:
            return None
        resolution, blob = stored
        if dimension(blob, resolution) != dim:
            log.warning("memory %s: its %s vector has %d dimensions, the index %d; not indexed",
                        memory_id, kind, dimension(blob, resolution), dim)
            return None
        return restore_one(blob, resolution)

    def _grow(self, size: int) -> None:
        if size <= len(self._alive):
            return
        capacity = max(size, 2 * len(self._alive), 64)
        extra = capacity - len(self._alive)
        self._step = np.concatenate([self._step, np.zeros(extra, dtype=np.int64)])
        self._kind = np.concatenate([self._kind, np.full(extra, -1, dtype=np.int8)])
        self._importance = np.concatenate([self._importance, np.zeros(extra)])
        self._alive = np.concatenate([self._alive, np.zeros(extra, dtype=bool)])


@functools.lru_cache(maxsize=16)
def _type_table(memory_types: tuple[str, ...]) -> np.ndarray:
    """Which type codes pass, by code + 1 (-1: unknown type): one table per set of types."""
    wanted = np.zeros(len(TYPE_CODES) + 1, dtype=bool)
    wanted[[TYPE_CODES[t] + 1 for t in memory_types]] = True
    wanted.flags.writeable = False
    return wanted


def text_of(data: object) -> str | None:
    """The words a memory's contents give the keyword index (the text the text model embeds)."""
    if data is NO_CONTENTS or data is UNREADABLE:
        return None
    try:
        return contents_text(data)
    except TypeError:
        return None
