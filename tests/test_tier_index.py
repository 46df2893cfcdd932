"""One agent's in-process index of one tier (indices/tier_index.py), on its own: an index whose
memories come and go (STM's, IM's) stays the size of what it holds, and answers as an index
built from scratch over the same memories does."""

from __future__ import annotations

import numpy as np

from indices.tier_index import COMPACT_AT, Filter, TierIndex
from tiers.record import Embeddings


def answers(index: TierIndex, query: np.ndarray) -> tuple:
    rows, scores = index.state.search(query, 10, index.mask(Filter(lo_step=0, memory_types=("state",))))
    near, distances = index.space.nearest((5.0, 5.0, 0.0), 10, None)
    return ([index.ids[r] for r in rows.tolist()], np.round(scores, 5).tolist(),
            sorted(index.ids[r] for r in near.tolist()), np.round(distances, 5).tolist())


def test_an_index_whose_memories_come_and_go_stays_the_size_of_what_it_holds() -> None:
    rng = np.random.default_rng(3)
    churned, fresh = TierIndex("stm", 16, 10.0, 5000), TierIndex("stm", 16, 10.0, 5000)
    live: dict[str, tuple] = {}
    for i in range(6 * COMPACT_AT):  # a window of 1,000 memories slides over 24,576 stores
        vector = rng.standard_normal(16).astype(np.float32)
        vector /= np.linalg.norm(vector)
        row = (f"m{i}", i, ("state", "action")[i % 2], float(i % 7) / 7, Embeddings(full_vector=vector.tobytes()),
               (float(i % 50) / 5, float(i % 37) / 4))
        churned.upsert(*row)
        live[row[0]] = row
        if len(live) > 1000:
            gone = next(iter(live))
            churned.remove(gone)
            del live[gone]
    for row in live.values():
        fresh.upsert(*row)
    assert len(churned) == 1000 and len(churned.ids) <= 1000 + COMPACT_AT + 1
    assert churned.nbytes() < 3 * fresh.nbytes()
    query = rng.standard_normal(16).astype(np.float32)
    assert answers(churned, query / np.linalg.norm(query)) == answers(fresh, query / np.linalg.norm(query))
