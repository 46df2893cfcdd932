"""Nearest vectors among one tier's memories: exact while small, FAISS IVF beyond.

Rows are appended and tombstoned, never moved, so a row number is a stable id for FAISS.
Vectors are unit length and similarity is the inner product (cosine). Every search takes an
optional mask of the rows a filter lets through: small masks are searched exactly (a filtered
search must never come back short), large ones go to FAISS with an ID selector and have their
candidates re-ranked exactly against the float32 rows kept here.

The IVF lists hold 8-bit scalar-quantized codes of the vectors, not float32 copies: scanning a
quarter of the bytes made a search over 61,500 384-d vectors 1.4x faster and the copy costs a
quarter of the memory, while the exact re-rank keeps recall where float32 lists had it.

Drift: the partition is trained on the rows present at the time. Rows that arrive later from
somewhere new (a new topic, a new region of a simulation) fit none of its lists well, and a
query among them probes lists chosen almost at random: with 10% of the rows from new clusters,
recall@10 for queries there fell to 0.65. So a row whose best list fits it worse than all but
0.2% of the rows goes to a tail searched exactly beside the IVF, and the partition is
retrained once the tail outgrows both TAIL_LIMIT rows and TAIL_SHARE of the set (or the set
grows REBUILD_GROWTH times).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

EXACT_LIMIT = 5_000  # below this many live rows (or rows passing a filter) search is exact
REBUILD_GROWTH = 4  # retrain the coarse quantizer once the index has grown this much
OVERSAMPLE = 4  # FAISS candidates per wanted result, re-ranked exactly
MAX_LISTS = 2048  # IVF lists at most: training cost grows with lists x samples (40 per list)
FIT_QUANTILE = 0.002  # a row fits the partition when its best list scores at least this quantile of
# rows the training did not see (training rows themselves fit better: the lists were fit to them)
TAIL_LIMIT = 2_000  # rows that fit no list, searched exactly; beyond this and TAIL_SHARE, retrain
TAIL_SHARE = 0.02
_NOTHING = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))


class VectorSet:
    def __init__(self, dim: int, exact_limit: int = EXACT_LIMIT, nprobe: int | None = None):
        self.dim = dim
        self.exact_limit = exact_limit
        self.nprobe = nprobe
        self._rows = np.zeros((0, dim), dtype=np.float32)
        self.present = np.zeros(0, dtype=bool)  # row has a vector (and is alive)
        self.count = 0  # rows used (alive or not)
        self._live = 0  # rows with a vector: kept as a count so a search makes no pass over them all
        self._ivf: faiss.IndexIVF | None = None
        self._trained_at = 0
        self._in_ivf = np.zeros(0, dtype=bool)
        self._in_tail = np.zeros(0, dtype=bool)  # rows that fit no IVF list (see the module docstring)
        self._tail = 0
        self._tail_rows: np.ndarray | None = None  # the tail's rows, listed once per change
        self._fit_floor = -np.inf  # a row whose best list scores below this is put in the tail
        self._pending: list[int] = []  # rows given a vector since the IVF index last caught up

    def __len__(self) -> int:
        return self._live

    def set(self, row: int, vector: np.ndarray | None) -> None:
        """Give a row its vector (or none); rows beyond the end grow the set."""
        self._grow(row + 1)
        if self._in_ivf[row]:
            self._ivf.remove_ids(np.array([row], dtype=np.int64))  # type: ignore[union-attr]
            self._in_ivf[row] = False
        if self._in_tail[row]:
            self._in_tail[row] = False
            self._tail -= 1
            self._tail_rows = None
        self._live -= bool(self.present[row])
        if vector is None:
            self.present[row] = False
            return
        self._rows[row] = vector
        self.present[row] = True
        self._live += 1
        if self._ivf is not None:  # without one, the first build takes every row
            self._pending.append(row)

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
        """FAISS over the rows ``allowed`` lets through (None: every row), re-ranked exactly."""
        index = self._index()
        # a filter passing a share of the rows leaves that share of each list: probe more lists
        share = candidates / self._live
        params = faiss.SearchParametersIVF(nprobe=min(index.nlist, math.ceil(self._nprobe(index.nlist) / share)))
        if allowed is not None:
            bitmap = np.packbits(allowed, bitorder="little")  # kept alive while FAISS reads it
            params.sel = faiss.IDSelectorBitmap(bitmap)
        _, found = index.search(query.reshape(1, -1), min(candidates, k * OVERSAMPLE), params=params)
        rows = found[0][found[0] >= 0]
        if self._tail:
            if self._tail_rows is None:
                self._tail_rows = np.flatnonzero(self._in_tail[: self.count])
            tail = self._tail_rows if allowed is None else self._tail_rows[allowed[self._tail_rows]]
            rows = np.concatenate([rows, tail])
        if len(rows) < k:  # the probed lists held too few allowed rows: answer exactly
            everyone = self.present[: self.count] if allowed is None else allowed
            return self._exact(query, k, np.flatnonzero(everyone))
        return self._exact(query, k, rows)  # exact re-rank of the candidates and the tail

    def _index(self) -> faiss.IndexIVF:
        if (self._ivf is None or self._live > REBUILD_GROWTH * self._trained_at
                or self._tail > max(TAIL_LIMIT, TAIL_SHARE * self._live)):
            self._train()
        if self._pending:
            rows = np.unique(np.array(self._pending, dtype=np.int64))
            self._pending = []
            self._absorb(rows[self.present[rows] & ~self._in_ivf[rows] & ~self._in_tail[rows]])
        return self._ivf

    def _train(self) -> None:
        live = np.flatnonzero(self.present[: self.count])
        # 4 sqrt(n) lists, each with the 39+ training points FAISS's k-means asks for
        nlist = int(max(1, min(MAX_LISTS, 4 * math.sqrt(len(live)), len(live) // 39)))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT, False
        )
        rng = np.random.default_rng(0)
        sample = live if len(live) <= 40 * nlist else np.sort(rng.choice(live, 40 * nlist, replace=False))
        index.train(self._rows[sample])
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids by row
        unseen = np.setdiff1d(live, sample, assume_unique=True)
        probe = unseen if len(unseen) >= 500 else live
        probe = probe if len(probe) <= 5000 else rng.choice(probe, 5000, replace=False)
        fit, _ = index.quantizer.search(self._rows[probe], 1)
        self._fit_floor = float(np.quantile(fit[:, 0], FIT_QUANTILE))
        self._ivf, self._trained_at = index, len(live)
        self._in_ivf[:] = False
        self._in_tail[:] = False
        self._tail = 0
        self._tail_rows = None
        self._pending = []
        self._absorb(live)

    def _absorb(self, rows: np.ndarray) -> None:
        """Put rows in the list that fits them best, or in the tail when none fits."""
        if not len(rows):
            return
        vectors = np.ascontiguousarray(self._rows[rows])
        fit, lists = self._ivf.quantizer.search(vectors, 1)  # type: ignore[union-attr]
        fits = fit[:, 0] >= self._fit_floor
        tail = rows[~fits]
        self._in_tail[tail] = True
        self._tail += len(tail)
        self._tail_rows = None
        rows, vectors, lists = rows[fits], np.ascontiguousarray(vectors[fits]), np.ascontiguousarray(lists[fits, 0])
        if len(rows):
            ids = rows.astype(np.int64)
            self._ivf.add_core(len(rows), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(lists))
            self._in_ivf[rows] = True

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this set without retraining (indices/snapshot.py)."""
        n = self.count
        out = {f"{prefix}_rows": self._rows[:n], f"{prefix}_present": self.present[:n]}
        if self._ivf is not None:
            out[f"{prefix}_ivf"] = faiss.serialize_index(self._ivf)
            out[f"{prefix}_in_ivf"] = self._in_ivf[:n]
            out[f"{prefix}_trained_at"] = np.array(self._trained_at)
            out[f"{prefix}_fit_floor"] = np.array(self._fit_floor)
        return out

    def from_arrays(self, prefix: str, arrays: dict[str, np.ndarray]) -> None:
        rows, present = arrays[f"{prefix}_rows"], arrays[f"{prefix}_present"]
        self._grow(len(rows))
        self._rows[: len(rows)] = rows
        self.present[: len(rows)] = present
        self._live = int(present.sum())
        if f"{prefix}_ivf" in arrays:
            self._ivf = faiss.deserialize_index(arrays[f"{prefix}_ivf"])
            self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            self._in_ivf[: len(rows)] = arrays[f"{prefix}_in_ivf"]
            self._trained_at = int(arrays[f"{prefix}_trained_at"])
            # a snapshot from before the tail existed has no floor: every row there fits
            self._fit_floor = float(arrays.get(f"{prefix}_fit_floor", -np.inf))
            # rows not in the lists (the tail, and any added since) are placed again
            self._pending = np.flatnonzero(self.present[: len(rows)] & ~self._in_ivf[: len(rows)]).tolist()

    def _nprobe(self, nlist: int) -> int:
        return self.nprobe or max(8, nlist // 32)

    def _grow(self, size: int) -> None:
        if size <= self.count:
            return
        if size > len(self.present):
            capacity = max(size, 2 * len(self.present), 64)
            rows = np.zeros((capacity, self.dim), dtype=np.float32)
            rows[: self.count] = self._rows[: self.count]
            self._rows = rows
            self.present = np.concatenate([self.present, np.zeros(capacity - len(self.present), dtype=bool)])
            self._in_ivf = np.concatenate([self._in_ivf, np.zeros(capacity - len(self._in_ivf), dtype=bool)])
            self._in_tail = np.concatenate([self._in_tail, np.zeros(capacity - len(self._in_tail), dtype=bool)])
        self.count = size
