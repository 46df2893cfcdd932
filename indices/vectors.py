"""Nearest vectors among one tier's memories: exact while small, a FAISS index beyond.

Rows are appended and tombstoned, never moved, so a row number is a stable id. Vectors are unit
length and similarity is the inner product (cosine). Every search takes an optional mask of the
rows a filter lets through: small masks are searched exactly (a filtered search must never come
back short), large ones go to FAISS with an ID selector; its candidates are re-ranked exactly
against the float32 rows kept here.

Which FAISS index, and how far its searches look, is measured on the data when the index is
built (indices/ann.py holds the two kinds). Sample rows are held out; their neighbours are found
exactly; IVF lists are trained and probed ever more widely until recall@10 on the held-out rows
reaches CALIBRATION_RECALL. If a few lists suffice (well-clustered vectors), IVF stays: on the
clustered benchmark vectors it probed 8 of 2,048 lists. If not, an HNSW graph is built and its
walk length calibrated the same way. On MiniLM vectors of 120,000 English sentences, IVF probing
1/32 of its lists (a fixed choice) found recall@10 0.89 and needed 12% of them, 2.5 ms,
for 0.95; the graph found 0.99 in 0.64 ms. Held-out rows join the index afterwards: a walk
toward a row that is already a node of a graph is easy, and would promise too much.

Neither index deletes here: a dropped (or re-vectored) row leaves a tombstone that searches skip
(the selector), and the index is rebuilt from the live rows once tombstones are more than half of
it, or once the set has grown REBUILD_GROWTH times since the build. Adding to a graph costs ~0.1
ms a vector, so rows given a vector since the index last grew wait in a pending list, searched
exactly, and join it in one batch once there are more than PENDING_LIMIT of them. Before a batch
joins, a few of its rows are checked the same way and the breadth only grows: rows from somewhere
new (drift: a new topic, a new region of a simulation) can need a wider look. A filter that lets
through a share of the rows looks 1/share as far.
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from indices.ann import NEIGHBOURS, TRAIN_SAMPLE, Approximate

EXACT_LIMIT = 5_000  # below this many live rows (or rows passing a filter) search is exact
OVERSAMPLE = 4  # FAISS candidates per wanted result, re-ranked exactly
PENDING_LIMIT = 2_000  # rows searched exactly before they join the index in one batch
REBUILD_GROWTH = 4  # rebuild (and choose again) once the set has grown this much since the build
CALIBRATION_RECALL = 0.97  # recall@10 searches must find on held-out rows (target 0.95, plus margin)
CALIBRATION_QUERIES = 64  # held out at a build
# Relative contrast (mean distance / distance to the 10th neighbour, Beyer et al. 1999) below
# which no index is tried after IVF: uniform 384-d vectors measure 1.10 and a graph reaches only
# 0.88 recall on them at its widest, after a build of ~40 s per 100,000 rows; 128-d uniform
# vectors measure 1.2, clustered ones 1.25-1.85.
HOPELESS_CONTRAST = 1.15
BATCH_QUERIES = 16  # checked before a batch joins (their cost: 16 exact searches)
ADD_CHUNK = 65_536  # rows handed to FAISS at a time
_NOTHING = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


_ONE_THREAD = threading.Lock()  # the limit is process-wide: one limit-and-restore at a time


def _scores(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``rows @ query`` on one BLAS thread: for the few thousand rows a filter or a candidate
    list leaves, handing the product to several threads costs more than it saves (4x slower on
    a busy 2-core machine)."""
    with _ONE_THREAD, _blas().limit(limits=1, user_api="blas"):
        return rows @ query


class VectorSet:
    def __init__(self, dim: int, exact_limit: int = EXACT_LIMIT, breadth: int | None = None, kind: str | None = None):
        """``breadth``: how far every search looks instead of the calibrated breadth, and ``kind``
        ("ivf" or "hnsw") instead of the measured choice (both for tests)."""
        self.dim = dim
        self.exact_limit = exact_limit
        self.breadth = breadth
        self.kind = kind
        self._rows = np.zeros((0, dim), dtype=np.float32)
        self.present = np.zeros(0, dtype=bool)  # row has a vector (and is alive)
        self.count = 0  # rows used (alive or not)
        self._live = 0  # rows with a vector: kept as a count so a search makes no pass over them all
        self._ann: Approximate | None = None
        self._built_at = 0  # live rows when the index was built
        self._entry_rows = np.zeros(0, dtype=np.int64)  # index entry -> row
        self._entry_alive = np.zeros(0, dtype=bool)  # index entry -> not a tombstone
        self._entry_of = np.zeros(0, dtype=np.int64)  # row -> its live index entry, or -1
        self._dead = 0  # tombstones in the index
        self._alive_bits: np.ndarray | None = None  # _entry_alive packed for FAISS, once per change
        self._calibrated = 0  # breadth found at the build (and grown by batches)
        self._exact_only = False  # no index kind reached the recall at the build: search exactly
        self._pending: list[int] = []  # rows given a vector since the index last grew
        self._pending_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return self._live

    def nbytes(self) -> int:
        """Memory held, estimated: the float32 rows and row maps, and the FAISS index's codes
        (8 bits a dimension), ids and, for a graph, its links."""
        held = sum(a.nbytes for a in (self._rows, self.present, self._entry_rows, self._entry_alive, self._entry_of))
        if self._ann is not None:
            entries = len(self._entry_rows)
            held += entries * (self.dim + 8) + (entries * NEIGHBOURS * 2 * 4 if self._ann.kind == "hnsw" else 0)
        return held + 8 * len(self._pending)

    @property
    def index_kind(self) -> str | None:
        """"ivf" or "hnsw" once an index is built, else None (all searches exact so far)."""
        return None if self._ann is None else self._ann.kind

    @property
    def breadth_in_use(self) -> int:
        """Lists probed (IVF) or walk length (HNSW) of an unfiltered search; 0 before a build."""
        return self.breadth or self._calibrated

    def set(self, row: int, vector: np.ndarray | None) -> None:
        """Give a row its vector (or none); rows beyond the end grow the set."""
        self._grow(row + 1)
        entry = self._entry_of[row]
        if entry >= 0:  # its index entry becomes a tombstone
            self._entry_alive[entry] = False
            self._entry_of[row] = -1
            self._dead += 1
            self._alive_bits = None
        self._live -= bool(self.present[row])
        if vector is None:
            self.present[row] = False
            return
        if row >= len(self._rows):
            self._allocate(len(self.present))
        self._rows[row] = vector
        self.present[row] = True
        self._live += 1
        if self._ann is not None:  # without one, the first build takes every row
            self._pending.append(row)
            self._pending_rows = None

    def drop(self, row: int) -> None:
        self.set(row, None)

    def vector(self, row: int) -> np.ndarray | None:
        """The row's vector as kept here (float32, unit length), or None."""
        return self._rows[row] if row < self.count and self.present[row] else None

    def search(self, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the k most similar rows among those ``mask`` allows (None: all), best first."""
        present = self.present[: self.count]
        allowed = None if mask is None else present & mask[: self.count]
        candidates = self._live if allowed is None else int(allowed.sum())
        if candidates == 0 or k <= 0:
            return _NOTHING
        if candidates <= self.exact_limit or (self._exact_only and self._live <= REBUILD_GROWTH * self._built_at):
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

    def similarities(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The exact score of every given row (NaN for a row without a vector)."""
        scores = np.full(len(rows), np.nan, dtype=np.float32)
        held = rows < self.count
        held[held] = self.present[rows[held]]
        scores[held] = np.clip(_scores(self._rows[rows[held]], query), -1.0, 1.0)
        return scores

    def _exact(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if 4 * len(rows) >= self.count:  # most rows: one pass over the block beats gathering them
            scores = (self._rows[: self.count] @ query)[rows]
        else:
            scores = _scores(self._rows[rows], query)
        # a cosine: reduced-resolution rows are not quite unit, and may not give more than 1
        np.clip(scores, -1.0, 1.0, out=scores)
        if k < len(rows):
            top = np.argpartition(-scores, k - 1)[:k]
        else:
            top = np.arange(len(rows))
        order = top[np.lexsort((rows[top], -scores[top]))]  # ties: lower row (older) first
        return rows[order], scores[order]

    def _approximate(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, candidates: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The index's candidates among the rows ``allowed`` lets through (None: every row) and
        the pending rows, re-ranked exactly."""
        ann = self._index()
        share = candidates / self._live
        breadth = math.ceil(self.breadth_in_use / share)
        rows = self._look(ann, query.reshape(1, -1), min(candidates, k * OVERSAMPLE), breadth, allowed)[0]
        if self._pending:
            if self._pending_rows is None:
                self._pending_rows = np.unique(np.array(self._pending, dtype=np.int64))
            pending = self._pending_rows[self.present[self._pending_rows]]
            rows = np.concatenate([rows, pending if allowed is None else pending[allowed[pending]]])
        if len(rows) < k:  # the index held too few allowed rows where it looked: answer exactly
            everyone = self.present[: self.count] if allowed is None else allowed
            return self._exact(query, k, np.flatnonzero(everyone))
        return self._exact(query, k, rows)

    def _look(
        self, ann: Approximate, queries: np.ndarray, want: int, breadth: int, allowed: np.ndarray | None
    ) -> list[np.ndarray]:
        """Each query's best ``want`` live rows (among ``allowed``) as the index finds them."""
        if allowed is not None:
            bits = np.packbits(allowed[self._entry_rows] & self._entry_alive, bitorder="little")
        elif self._dead:
            if self._alive_bits is None:
                self._alive_bits = np.packbits(self._entry_alive, bitorder="little")
            bits = self._alive_bits
        else:
            bits = None
        found = ann.search(queries, want, breadth, bits)
        return [self._entry_rows[entries[entries >= 0]] for entries in found]

    def _index(self) -> Approximate:
        ann = self._ann
        if (ann is None or self._dead > max(PENDING_LIMIT, ann.size // 2)
                or self._live > REBUILD_GROWTH * self._built_at):
            return self._build()
        if len(self._pending) > PENDING_LIMIT:
            rows = np.unique(np.array(self._pending, dtype=np.int64))
            rows = rows[self.present[rows] & (self._entry_of[rows] < 0)]
            self._pending, self._pending_rows = [], None
            if self.breadth is not None:
                self._add(rows)
                return ann
            # rows from somewhere new may need a wider look: a few of them, held out, check it
            queries = np.random.default_rng(len(rows)).choice(rows, min(BATCH_QUERIES, len(rows) // 10), replace=False)
            self._add(np.setdiff1d(rows, queries, assume_unique=True))
            self._calibrated = self._calibrate(ann, queries, self._calibrated) or self._calibrated
            self._add(queries)
        return ann

    def _build(self) -> Approximate:
        """A new index of the live rows: IVF if a few lists find the held-out rows' neighbours,
        else an HNSW graph; with its breadth calibrated."""
        live = np.flatnonzero(self.present[: self.count])
        rng = np.random.default_rng(0)
        queries = np.sort(rng.choice(live, min(CALIBRATION_QUERIES, len(live) // 10), replace=False))
        held = np.zeros(self.count, dtype=bool)
        held[queries] = True
        rest = live[~held[live]]
        self._built_at = len(live)
        sample = rest if len(rest) <= TRAIN_SAMPLE else np.sort(rng.choice(rest, TRAIN_SAMPLE, replace=False))
        hopeless = False
        for kind in ("ivf", "hnsw"):
            if self.kind not in (None, kind):
                continue
            vectors = self._rows[sample]
            self._reset(Approximate.ivf(vectors, len(rest), rng) if kind == "ivf" else Approximate.hnsw(vectors, rng))
            self._add(rest)
            if self.breadth is not None:
                break
            # unless IVF is asked for, lists are probed only as widely as beats a graph
            found = self._calibrate(self._ann, queries, cheap_only=kind == "ivf" and self.kind is None)  # type: ignore[arg-type]
            if found is not None:
                self._calibrated = found
                break
            if self.kind is None and self._contrast(queries, rest) < HOPELESS_CONTRAST:
                hopeless = True  # neighbours hardly nearer than any row: a graph would not find them either
                self._calibrated = self._ann.steps()[-1]  # type: ignore[union-attr]
                break
        # vectors no index kind finds well enough (uniform on a high-dimensional sphere, say)
        self._exact_only = self.breadth is None and self.kind is None and (hopeless or not self._reaches(queries))
        self._add(queries)
        return self._ann  # type: ignore[return-value]

    def _contrast(self, queries: np.ndarray, rows: np.ndarray) -> float:
        """The median over ``queries`` of their mean distance to ``rows`` over their distance to
        the 10th nearest of them (unit vectors: distance from cosine)."""
        k = min(10, len(rows))
        if not len(queries) or k == 0:
            return math.inf
        vectors = self._rows[queries]
        best = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        total = np.zeros(len(queries))
        for start in range(0, len(rows), ADD_CHUNK):  # a chunk of rows at a time: no queries x rows block
            scores = vectors @ self._rows[rows[start : start + ADD_CHUNK]].T
            total += np.sqrt(np.maximum(2.0 - 2.0 * scores, 0.0)).sum(axis=1)
            best = np.concatenate([best, scores], axis=1)
            best = -np.partition(-best, k - 1, axis=1)[:, :k]
        near = np.sqrt(np.maximum(2.0 - 2.0 * best.min(axis=1), 1e-12))
        return float(np.median(total / len(rows) / near))

    def _reset(self, ann: Approximate) -> None:
        self._ann = ann
        self._entry_rows = np.zeros(0, dtype=np.int64)
        self._entry_alive = np.zeros(0, dtype=bool)
        self._entry_of[:] = -1
        self._dead = 0
        self._alive_bits = None
        self._pending, self._pending_rows = [], None

    def _add(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        first = self._ann.size  # type: ignore[union-attr]
        for start in range(0, len(rows), ADD_CHUNK):  # gathered a chunk at a time: no copy of every row
            self._ann.add(self._rows[rows[start : start + ADD_CHUNK]])  # type: ignore[union-attr]
        self._entry_rows = np.concatenate([self._entry_rows, rows.astype(np.int64)])
        self._entry_alive = np.concatenate([self._entry_alive, np.ones(len(rows), dtype=bool)])
        self._entry_of[rows] = np.arange(first, first + len(rows))
        self._alive_bits = None

    def _reaches(self, queries: np.ndarray) -> bool:
        """Whether the index at its calibrated breadth finds the held-out rows' neighbours well
        enough (CALIBRATION_RECALL); the widest breadth is kept when none does."""
        return self._calibrate(self._ann, queries, self._calibrated, cheap_only=True) is not None  # type: ignore[arg-type]

    def _calibrate(self, ann: Approximate, queries: np.ndarray, at_least: int = 0, cheap_only: bool = False) -> int | None:
        """The smallest breadth (``at_least`` or more) whose searches, re-ranked as every search
        is, find recall@10 >= CALIBRATION_RECALL of the exact neighbours, among the index's rows,
        of ``queries`` (rows not in the index). If none does: the widest, or None with
        ``cheap_only`` (only breadths that beat a graph are tried)."""
        steps = [step for step in ann.steps() if step >= at_least and (not cheap_only or ann.cheap(step))]
        steps = steps or [at_least]
        in_index = self._entry_of[: self.count] >= 0
        k = min(10, int(in_index.sum()))
        if not len(queries) or k == 0:
            return steps[0]
        vectors = self._rows[queries]
        scores = vectors @ self._rows[: self.count].T
        scores[:, ~in_index] = -np.inf
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
        for breadth in steps:
            hits = 0
            for vector, row_scores, threshold, rows in zip(
                vectors, scores, kth, self._look(ann, vectors, k * OVERSAMPLE, breadth, None)
            ):
                best, _ = self._exact(vector, k, rows)
                hits += int((row_scores[best] >= threshold - 1e-6).sum())
            if hits >= CALIBRATION_RECALL * k * len(queries):
                return breadth
        return None if cheap_only else steps[-1]

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this set without rebuilding its index (indices/snapshot.py)."""
        n = self.count
        rows = self._rows[:n] if self._live else np.zeros((0, self.dim), dtype=np.float32)
        out = {f"{prefix}_rows": rows, f"{prefix}_present": self.present[:n]}
        if self._ann is not None:
            out[f"{prefix}_ann"] = self._ann.serialize()
            out[f"{prefix}_entry_rows"] = self._entry_rows
            out[f"{prefix}_entry_alive"] = self._entry_alive
            out[f"{prefix}_breadth"] = np.array(self._calibrated)
            out[f"{prefix}_built_at"] = np.array(self._built_at)
            out[f"{prefix}_exact_only"] = np.array(self._exact_only)
        return out

    def from_arrays(self, prefix: str, arrays: dict[str, np.ndarray]) -> None:
        """A snapshot without an index (none built yet, or written by an older version) builds one on use."""
        rows, present = arrays[f"{prefix}_rows"], arrays[f"{prefix}_present"]
        self._grow(len(present))
        if present.any():
            self._allocate(len(self.present))
            self._rows[: len(rows)] = rows
        self.present[: len(present)] = present
        self._live = int(present.sum())
        if f"{prefix}_ann" in arrays:
            self._reset(Approximate.deserialize(arrays[f"{prefix}_ann"]))
            self._entry_rows = np.asarray(arrays[f"{prefix}_entry_rows"], dtype=np.int64)
            self._entry_alive = np.asarray(arrays[f"{prefix}_entry_alive"], dtype=bool).copy()
            alive = np.flatnonzero(self._entry_alive)
            self._entry_of[self._entry_rows[alive]] = alive
            self._dead = len(self._entry_alive) - len(alive)
            self._calibrated = int(arrays[f"{prefix}_breadth"])
            self._built_at = int(arrays[f"{prefix}_built_at"])
            self._exact_only = bool(arrays[f"{prefix}_exact_only"])
            # rows with a vector but no live entry (added since the index last grew) wait again
            self._pending = np.flatnonzero(self.present[: len(rows)] & (self._entry_of[: len(rows)] < 0)).tolist()

    def _allocate(self, capacity: int) -> None:
        rows = np.zeros((capacity, self.dim), dtype=np.float32)
        rows[: min(self.count, len(self._rows))] = self._rows[: self.count]
        self._rows = rows

    def _grow(self, size: int) -> None:
        if size <= self.count:
            return
        if size > len(self.present):
            capacity = max(size, 2 * len(self.present), 64)
            if len(self._rows):  # no block at all until the first vector: most tiers hold none
                self._allocate(capacity)
            self.present = np.concatenate([self.present, np.zeros(capacity - len(self.present), dtype=bool)])
            self._entry_of = np.concatenate([self._entry_of, np.full(capacity - len(self._entry_of), -1, dtype=np.int64)])
        self.count = size
