"""Nearest vectors among one tier's memories: exact while small, a FAISS HNSW graph beyond.

Rows are appended and tombstoned, never moved, so a row number is a stable id. Vectors are unit
length and similarity is the inner product (cosine). Every search takes an optional mask of the
rows a filter lets through: small masks are searched exactly (a filtered search must never come
back short), large ones walk the graph with an ID selector; the graph's candidates are re-ranked
exactly against the float32 rows kept here.

Why a graph: on MiniLM vectors of 120,000 English sentences, an IVF index probing 1/32 of its
lists (the former design) found recall@10 0.89, and needed 12% of its lists, 2.5 ms a search,
for 0.95; HNSW (M=32, 8-bit codes, exact re-rank) found 0.97 in 0.36 ms. On clustered synthetic
vectors both did well, which is how the IVF's weakness went unseen. A graph also has no partition
to drift from: rows from somewhere new simply link to their nearest neighbours.

A graph cannot delete. A dropped (or re-vectored) row stays in it as a tombstone that searches
walk through but never return, and the graph is rebuilt from the live rows once tombstones are
more than half of it. Adding to a graph costs ~0.1 ms a vector, so rows given a vector since the
graph last grew wait in a pending list, searched exactly, and join it in one batch once there
are more than PENDING_LIMIT of them.

How far a search looks (efSearch) is measured when the graph is built, not assumed: random live
rows serve as queries, their neighbours are found exactly, and the smallest ef that finds
recall@10 >= CALIBRATION_RECALL of them is kept. A filter that lets through a share of the rows
looks 1/share as far. When a batch joins the graph, a few of its rows are checked the same way
and the distance only grows: rows from somewhere new (drift) can need a longer walk. Sample rows
are held out of the graph while they serve (a walk toward a node of the graph is easy), and the
distance is never below MIN_EF: queries unlike every stored row (a new topic, a state never seen)
need a longer walk than stored rows show. On 1,200 clustered rows and queries from other clusters,
ef 64 found recall@10 0.93 where the stored rows promised 0.97; ef 128 found 0.99.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_LIMIT = 5_000  # below this many live rows (or rows passing a filter) search is exact
OVERSAMPLE = 4  # graph candidates per wanted result, re-ranked exactly
NEIGHBOURS = 32  # HNSW M: links per node
BUILD_EF = 40  # efConstruction
PENDING_LIMIT = 2_000  # rows searched exactly before they join the graph in one batch
CODE_SAMPLE = 50_000  # rows the 8-bit codes' ranges are trained on
CALIBRATION_RECALL = 0.97  # recall@10 a search must find on sample queries (target 0.95, plus margin)
CALIBRATION_QUERIES = 64  # at a build, from every row
BATCH_QUERIES = 16  # when a batch joins the graph, from the batch (its cost: 16 exact searches)
MIN_EF = 128  # walks never shorter: queries unlike every stored row (see the module docstring)
EF_STEPS = (128, 192, 256, 384, 512, 768, 1024)
MAX_EF = 2048  # how far a filtered search looks at most (fewer results than k: exact instead)
_NOTHING = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


class VectorSet:
    def __init__(self, dim: int, exact_limit: int = EXACT_LIMIT, ef: int | None = None):
        """``ef``: how far every search looks, instead of the calibrated distance (tests)."""
        self.dim = dim
        self.exact_limit = exact_limit
        self.ef = ef
        self._rows = np.zeros((0, dim), dtype=np.float32)
        self.present = np.zeros(0, dtype=bool)  # row has a vector (and is alive)
        self.count = 0  # rows used (alive or not)
        self._live = 0  # rows with a vector: kept as a count so a search makes no pass over them all
        self._graph: faiss.IndexHNSW | None = None
        self._graph_rows = np.zeros(0, dtype=np.int64)  # graph id -> row
        self._entry_alive = np.zeros(0, dtype=bool)  # graph id -> not a tombstone
        self._entry_of = np.zeros(0, dtype=np.int64)  # row -> its live graph id, or -1
        self._dead = 0  # tombstones in the graph
        self._alive_bits: np.ndarray | None = None  # _entry_alive packed for FAISS, once per change
        self._calibrated_ef = 0
        self._pending: list[int] = []  # rows given a vector since the graph last grew
        self._pending_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return self._live

    def set(self, row: int, vector: np.ndarray | None) -> None:
        """Give a row its vector (or none); rows beyond the end grow the set."""
        self._grow(row + 1)
        entry = self._entry_of[row]
        if entry >= 0:  # its graph entry becomes a tombstone
            self._entry_alive[entry] = False
            self._entry_of[row] = -1
            self._dead += 1
            self._alive_bits = None
        self._live -= bool(self.present[row])
        if vector is None:
            self.present[row] = False
            return
        self._rows[row] = vector
        self.present[row] = True
        self._live += 1
        if self._graph is not None:  # without one, the first build takes every row
            self._pending.append(row)
            self._pending_rows = None

    def drop(self, row: int) -> None:
        self.set(row, None)

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k most similar rows among those ``mask`` allows (None: all), best first."""
        present = self.present[: self.count]
        allowed = None if mask is None else present & mask[: self.count]
        candidates = self._live if allowed is None else int(allowed.sum())
        if candidates == 0 or k <= 0:
            return _NOTHING
        if candidates <= self.exact_limit:
            return self._exact(query, k, np.flatnonzero(present if allowed is None else allowed))
        if candidates == self._live:
            allowed = None  # the filter lets every row through: no selector to pay for
        return self._approximate(query, k, allowed, candidates)

    def search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same among a few given rows (a place query's), exactly: no pass over the whole set."""
        rows = rows[rows < self.count]
        rows = rows[self.present[rows]]
        if not len(rows) or k <= 0:
            return _NOTHING
        return self._exact(query, k, rows)

    def _exact(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if 4 * len(rows) >= self.count:  # most rows: one pass over the block beats gathering them
            scores = (self._rows[: self.count] @ query)[rows]
        else:
            scores = self._rows[rows] @ query
        if k < len(rows):
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(len(rows))
        order = top[np.lexsort((rows[top], -scores[top]))]  # ties: lower row (older) first
        return rows[order], scores[order]

    def _approximate(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, candidates: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graph's candidates among the rows ``allowed`` lets through (None: every row) and
        the pending rows, re-ranked exactly."""
        graph = self._index()
        share = candidates / self._live
        rows = self._walk(graph, query.reshape(1, -1), min(candidates, k * OVERSAMPLE),
                          math.ceil(self._search_ef() / share), allowed)[0]
        if self._pending:
            if self._pending_rows is None:
                self._pending_rows = np.unique(np.array(self._pending, dtype=np.int64))
            pending = self._pending_rows[self.present[self._pending_rows]]
            rows = np.concatenate([rows, pending if allowed is None else pending[allowed[pending]]])
        if len(rows) < k:  # the walk met too few allowed rows: answer exactly
            everyone = self.present[: self.count] if allowed is None else allowed
            return self._exact(query, k, np.flatnonzero(everyone))
        return self._exact(query, k, rows)

    def _walk(
        self, graph: faiss.IndexHNSW, queries: np.ndarray, want: int, ef: int, allowed: np.ndarray | None
    ) -> list[np.ndarray]:
        """Each query's best ``want`` live rows (among ``allowed``) as the graph finds them."""
        params = faiss.SearchParametersHNSW(efSearch=max(want, min(MAX_EF, ef)))
        if allowed is not None:
            bits = np.packbits(allowed[self._graph_rows] & self._entry_alive, bitorder="little")
        elif self._dead:
            if self._alive_bits is None:
                self._alive_bits = np.packbits(self._entry_alive, bitorder="little")
            bits = self._alive_bits
        else:
            bits = None
        if bits is not None:
            params.sel = faiss.IDSelectorBitmap(bits)  # ``bits`` stays referenced until the search returns
        _, found = graph.search(queries, want, params=params)
        return [self._graph_rows[ids[ids >= 0]] for ids in found]

    def _index(self) -> faiss.IndexHNSW:
        graph = self._graph
        if graph is None or self._dead > max(PENDING_LIMIT, graph.ntotal // 2):
            return self._build()
        if len(self._pending) > PENDING_LIMIT:
            rows = np.unique(np.array(self._pending, dtype=np.int64))
            rows = rows[self.present[rows] & (self._entry_of[rows] < 0)]
            if len(rows):  # rows from somewhere new may need a longer walk than the graph's rows so far
                queries = np.random.default_rng(len(rows)).choice(rows, min(BATCH_QUERIES, len(rows)), replace=False)
                self._calibrated_ef = self._calibrate(graph, queries, self._calibrated_ef)
            self._add(rows)
            self._pending, self._pending_rows = [], None
        return graph

    def _build(self) -> faiss.IndexHNSW:
        """A new graph of the live rows, with a calibrated search distance."""
        live = np.flatnonzero(self.present[: self.count])
        graph = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = BUILD_EF
        rng = np.random.default_rng(0)
        sample = live if len(live) <= CODE_SAMPLE else np.sort(rng.choice(live, CODE_SAMPLE, replace=False))
        graph.train(self._rows[sample])
        self._graph = graph
        self._graph_rows = np.zeros(0, dtype=np.int64)
        self._entry_alive = np.zeros(0, dtype=bool)
        self._entry_of[:] = -1
        self._dead = 0
        self._alive_bits = None
        self._pending, self._pending_rows = [], None
        # the sample queries join last: a walk toward a row that is a node of the graph is easy, and
        # would promise more than searches for new vectors find
        queries = rng.choice(live, min(CALIBRATION_QUERIES, len(live) // 10), replace=False)
        held = np.zeros(self.count, dtype=bool)
        held[queries] = True
        self._add(live[~held[live]])
        self._calibrated_ef = self._calibrate(graph, queries)
        self._add(np.sort(queries))
        return graph

    def _add(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        first = self._graph.ntotal  # type: ignore[union-attr]
        self._graph.add(np.ascontiguousarray(self._rows[rows]))  # type: ignore[union-attr]
        self._graph_rows = np.concatenate([self._graph_rows, rows.astype(np.int64)])
        self._entry_alive = np.concatenate([self._entry_alive, np.ones(len(rows), dtype=bool)])
        self._entry_of[rows] = np.arange(first, first + len(rows))
        self._alive_bits = None

    def _calibrate(self, graph: faiss.IndexHNSW, queries: np.ndarray, at_least: int = 0) -> int:
        """The smallest ef (``at_least`` or more) whose searches, re-ranked as every search is, find
        recall@10 >= CALIBRATION_RECALL of the exact neighbours, among the graph's rows, of
        ``queries`` (rows not in the graph)."""
        in_graph = self._entry_of[: self.count] >= 0
        k = min(10, int(in_graph.sum()))
        if not len(queries) or k == 0:
            return max(at_least, MIN_EF)
        vectors = self._rows[queries]
        scores = vectors @ self._rows[: self.count].T
        scores[:, ~in_graph] = -np.inf
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        for ef in [step for step in EF_STEPS if step >= at_least] or [at_least]:
            hits = 0
            for vector, row_scores, threshold, rows in zip(
                vectors, scores, kth, self._walk(graph, vectors, k * OVERSAMPLE, ef, None)
            ):
                best, _ = self._exact(vector, k, rows)
                hits += int((row_scores[best] >= threshold - 1e-6).sum())
            if hits >= CALIBRATION_RECALL * k * len(queries):
                return ef
        return max(at_least, EF_STEPS[-1])

    def _search_ef(self) -> int:
        return self.ef or self._calibrated_ef or MIN_EF

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this set without rebuilding its graph (indices/snapshot.py)."""
        n = self.count
        out = {f"{prefix}_rows": self._rows[:n], f"{prefix}_present": self.present[:n]}
        if self._graph is not None:
            out[f"{prefix}_graph"] = faiss.serialize_index(self._graph)
            out[f"{prefix}_graph_rows"] = self._graph_rows
            out[f"{prefix}_entry_alive"] = self._entry_alive
            out[f"{prefix}_ef"] = np.array(self._calibrated_ef)
        return out

    def from_arrays(self, prefix: str, arrays: dict[str, np.ndarray]) -> None:
        """A snapshot without a graph (none built yet, or written before graphs) builds one on use."""
        rows, present = arrays[f"{prefix}_rows"], arrays[f"{prefix}_present"]
        self._grow(len(rows))
        self._rows[: len(rows)] = rows
        self.present[: len(rows)] = present
        self._live = int(present.sum())
        if f"{prefix}_graph" in arrays:
            self._graph = faiss.deserialize_index(arrays[f"{prefix}_graph"])
            self._graph_rows = np.asarray(arrays[f"{prefix}_graph_rows"], dtype=np.int64)
            self._entry_alive = np.asarray(arrays[f"{prefix}_entry_alive"], dtype=bool).copy()
            self._entry_of[:] = -1
            alive = np.flatnonzero(self._entry_alive)
            self._entry_of[self._graph_rows[alive]] = alive
            self._dead = len(self._entry_alive) - len(alive)
            self._calibrated_ef = int(arrays[f"{prefix}_ef"])
            # rows with a vector but no live entry (added since the graph last grew) wait again
            self._pending = np.flatnonzero(self.present[: len(rows)] & (self._entry_of[: len(rows)] < 0)).tolist()

    def _grow(self, size: int) -> None:
        if size <= self.count:
            return
        if size > len(self.present):
            capacity = max(size, 2 * len(self.present), 64)
            rows = np.zeros((capacity, self.dim), dtype=np.float32)
            rows[: self.count] = self._rows[: self.count]
            self._rows = rows
            self.present = np.concatenate([self.present, np.zeros(capacity - len(self.present), dtype=bool)])
            self._entry_of = np.concatenate([self._entry_of, np.full(capacity - len(self._entry_of), -1, dtype=np.int64)])
        self.count = size
