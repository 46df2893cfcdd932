"""VectorSet against brute force while rows are added, replaced and dropped around searches,
on both of its paths (exact while small, a FAISS HNSW graph beyond ``exact_limit``)."""

from __future__ import annotations

import numpy as np
import pytest

from indices.vectors import VectorSet

DIM = 24


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = rng.standard_normal((8, DIM))
    points = centers[rng.integers(0, 8, n)] + 0.4 * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("exact_limit", [10_000, 200])
def test_searches_follow_every_change(exact_limit: int) -> None:
    rng = np.random.default_rng(5)
    vectors = VectorSet(DIM, exact_limit=exact_limit, ef=10_000)  # the walk sees every node: exact answers
    truth: dict[int, np.ndarray] = {}
    for round_ in range(6):
        for row, vector in zip(rng.integers(0, 1500, 400).tolist(), unit(rng, 400)):
            vectors.set(row, vector)
            truth[row] = vector
        for row in rng.integers(0, 1500, 60).tolist():
            vectors.drop(row)
            truth.pop(row, None)
        assert len(vectors) == len(truth)
        rows = np.array(sorted(truth))
        matrix = np.stack([truth[r] for r in rows])
        for query in unit(rng, 5):
            scores = matrix @ query
            found, got = vectors.search(query, 10)
            assert found.tolist() == rows[np.lexsort((rows, -scores))[:10]].tolist()
            np.testing.assert_allclose(got, np.sort(scores)[::-1][:10], rtol=1e-5)
            mask = np.zeros(1500, dtype=bool)
            mask[rng.integers(0, 1500, 700)] = True
            kept = mask[rows]
            found, _ = vectors.search(query, 10, mask)
            order = np.lexsort((rows[kept], -scores[kept]))[:10]
            assert found.tolist() == rows[kept][order].tolist(), round_
            few = rng.integers(0, 1600, 30)
            found, _ = vectors.search_rows(query, 5, few)
            among = np.array(sorted({r for r in few.tolist() if r in truth}))
            if len(among):
                best = among[np.lexsort((among, -(np.stack([truth[r] for r in among]) @ query)))[:5]]
                assert found.tolist() == best.tolist()


def test_a_set_rebuilt_from_its_arrays_answers_alike() -> None:
    rng = np.random.default_rng(8)
    vectors = VectorSet(DIM, exact_limit=100, ef=10_000)
    for row, vector in enumerate(unit(rng, 600)):
        vectors.set(row, vector)
    query = unit(rng, 1)[0]
    vectors.search(query, 5)  # builds the graph
    vectors.set(600, unit(rng, 1)[0])  # added after it: must still be found after a reload
    vectors.drop(3)
    copy = VectorSet(DIM, exact_limit=100, ef=10_000)
    copy.from_arrays("v", vectors.to_arrays("v"))
    assert len(copy) == len(vectors) == 600
    for query in unit(rng, 5):
        assert copy.search(query, 10)[0].tolist() == vectors.search(query, 10)[0].tolist()
    assert copy.search(vectors._rows[600], 1)[0].tolist() == [600]


def test_rows_from_somewhere_new_are_found_after_the_build() -> None:
    """The graph is built on the first topics; rows of new topics arrive later (drift). Queries
    among them must still find their true neighbours (an IVF partition trained on the old topics
    found recall 0.65 here)."""
    rng = np.random.default_rng(21)
    dim = 64
    old_topics, new_topics = (rng.standard_normal((n, dim)) for n in (40, 10))

    def around(topics: np.ndarray, n: int) -> np.ndarray:
        points = topics[rng.integers(0, len(topics), n)] + 0.6 * rng.standard_normal((n, dim))
        return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)

    vectors = VectorSet(dim, exact_limit=500)  # calibrated search distance
    first, later = around(old_topics, 20_000), around(new_topics, 3_000)  # more than wait outside the graph
    for row, vector in enumerate(first):
        vectors.set(row, vector)
    vectors.search(first[0], 10)  # builds the graph on the old topics
    for row, vector in enumerate(later, start=len(first)):
        vectors.set(row, vector)
    every = np.concatenate([first, later])
    recalls = []
    for query in around(new_topics, 60):
        found, _ = vectors.search(query, 10)
        truth = every @ query
        recalls.append(np.mean(truth[found] >= np.sort(truth)[-10] - 1e-6))
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    assert vectors._graph.ntotal == len(every)  # the later rows joined the graph (pending beyond its limit)
