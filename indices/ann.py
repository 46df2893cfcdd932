"""The approximate indices a VectorSet can walk: IVF lists or an HNSW graph, behind one face.

Both hold 8-bit codes of the vectors (the VectorSet re-ranks their candidates exactly against
float32 rows), number their entries in the order they were added, and take an ID selector. They
differ in what "look further" means: more lists probed (IVF) or a longer walk (HNSW's efSearch),
the ``breadth`` of a search. Which one a set uses is measured by the set (indices/vectors.py).
"""

from __future__ import annotations

import math
from typing import Any

import faiss as _faiss
import numpy as np

# faiss's bundled stubs (generated from SWIG) miss most attributes of its classes: typed loosely here
faiss: Any = _faiss

MAX_LISTS = 2048  # IVF lists at most: training cost grows with lists x samples (40 per list)
TRAIN_SAMPLE = 40 * MAX_LISTS  # rows either kind is trained on at most
NEIGHBOURS = 32  # HNSW M: links per node
BUILD_EF = 100  # HNSW efConstruction: at 40, recall on clustered 384-d vectors stopped at 0.97 whatever the walk
CODE_SAMPLE = 50_000  # rows the HNSW's 8-bit code ranges are trained on
# HNSW walks are never shorter than MIN_EF: queries unlike every stored row (a new topic, a state
# never seen) need more than held-out rows show (on 1,200 clustered rows, with queries from other
# clusters, ef 64 found recall@10 0.97 and ef 128 found 0.99).
MIN_EF = 64
MAX_EF = 2048  # how far a filtered walk goes at most (fewer results than k: the set answers exactly)
IVF_STEPS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
HNSW_STEPS = (MIN_EF, 96, 128, 192, 256, 384, 512, 768, 1024)


class Approximate:
    def __init__(self, index: faiss.Index):
        self.index = index
        self.kind = "ivf" if isinstance(index, faiss.IndexIVF) else "hnsw"

    @classmethod
    def ivf(cls, sample: np.ndarray, rows: int, rng: np.random.Generator) -> Approximate:
        """Lists for ``rows`` rows, trained on ``sample`` (TRAIN_SAMPLE of them at most, or all):
        4 sqrt(n) lists, each with the 39+ training points FAISS's k-means asks for."""
        nlist = int(max(1, min(MAX_LISTS, 4 * math.sqrt(rows), len(sample) // 39)))
        dim = sample.shape[1]
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT, False
        )
        if len(sample) > 40 * nlist:
            sample = sample[np.sort(rng.choice(len(sample), 40 * nlist, replace=False))]
        index.train(sample)
        return cls(index)

    @classmethod
    def hnsw(cls, sample: np.ndarray, rng: np.random.Generator) -> Approximate:
        """A graph whose 8-bit codes' ranges are trained on ``sample``."""
        dim = sample.shape[1]
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = BUILD_EF
        if len(sample) > CODE_SAMPLE:
            sample = sample[rng.choice(len(sample), CODE_SAMPLE, replace=False)]
        index.train(sample)
        return cls(index)

    @property
    def size(self) -> int:
        return self.index.ntotal

    def add(self, vectors: np.ndarray) -> None:
        self.index.add(np.ascontiguousarray(vectors))

    def steps(self) -> list[int]:
        """Breadths to try, cheapest first, up to a look at everything."""
        if self.kind == "hnsw":
            return list(HNSW_STEPS)
        nlist = self.index.nlist
        return [step for step in IVF_STEPS if step < nlist] + [nlist]

    def cheap(self, breadth: int) -> bool:
        """Whether lists probed this widely still beat a graph: at most 1/16 of them (or 8)."""
        return self.kind == "hnsw" or breadth <= max(8, self.index.nlist // 16)

    def search(self, queries: np.ndarray, want: int, breadth: int, bits: np.ndarray | None) -> np.ndarray:
        """Entry numbers (-1: none) of each query's best ``want`` among the entries ``bits`` selects."""
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(want, min(MAX_EF, breadth)))
        else:
            params = faiss.SearchParametersIVF(nprobe=min(self.index.nlist, breadth))
        if bits is not None:
            params.sel = faiss.IDSelectorBitmap(bits)  # ``bits`` stays referenced until the search returns
        _, found = self.index.search(queries, want, params=params)
        return found

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self.index)

    @classmethod
    def deserialize(cls, blob: np.ndarray) -> Approximate:
        return cls(faiss.deserialize_index(blob))
