"""VectorSet against brute force while rows are added, replaced and dropped around searches,
on both of its paths (exact while small, a FAISS HNSW graph beyond ``exact_limit``)."""

from __future__ import annotations

import numpy as np
import pytest

from corpus import stdlib_sentences
from indices import vectors as vectors_module
from indices.vectors import VectorSet

DIM = 24


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    centers = rng.standard_normal((8, DIM))
    points = centers[rng.integers(0, 8, n)] + 0.4 * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("exact_limit, kind", [(10_000, None), (200, "ivf"), (200, "hnsw")])
def test_searches_follow_every_change(exact_limit: int, kind: str | None) -> None:
    rng = np.random.default_rng(5)
    vectors = VectorSet(DIM, exact_limit=exact_limit, breadth=10_000, kind=kind)  # look at everything: exact answers
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


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_a_set_rebuilt_from_its_arrays_answers_alike(kind: str) -> None:
    rng = np.random.default_rng(8)
    vectors = VectorSet(DIM, exact_limit=100, breadth=10_000, kind=kind)
    for row, vector in enumerate(unit(rng, 600)):
        vectors.set(row, vector)
    query = unit(rng, 1)[0]
    vectors.search(query, 5)  # builds the index
    vectors.set(600, unit(rng, 1)[0])  # added after it: must still be found after a reload
    vectors.drop(3)
    copy = VectorSet(DIM, exact_limit=100, breadth=10_000)
    copy.from_arrays("v", vectors.to_arrays("v"))
    assert len(copy) == len(vectors) == 600
    for query in unit(rng, 5):
        assert copy.search(query, 10)[0].tolist() == vectors.search(query, 10)[0].tolist()
    assert copy.search(vectors._rows[600], 1)[0].tolist() == [600]
    assert copy.index_kind == vectors.index_kind == kind


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_rows_from_somewhere_new_are_found_after_the_build(kind: str) -> None:
    """The index is built on the first topics; rows of new topics arrive later (drift). Queries
    among them must still find their true neighbours (IVF lists trained on the old topics, probed
    as widely as the old topics needed, found recall 0.65 here)."""
    rng = np.random.default_rng(21)
    dim = 64
    old_topics, new_topics = (rng.standard_normal((n, dim)) for n in (40, 10))

    def around(topics: np.ndarray, n: int) -> np.ndarray:
        points = topics[rng.integers(0, len(topics), n)] + 0.6 * rng.standard_normal((n, dim))
        return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)

    vectors = VectorSet(dim, exact_limit=500, kind=kind)  # calibrated breadth
    first, later = around(old_topics, 20_000), around(new_topics, 3_000)  # more than wait outside the index
    for row, vector in enumerate(first):
        vectors.set(row, vector)
    vectors.search(first[0], 10)  # builds the index on the old topics
    for row, vector in enumerate(later, start=len(first)):
        vectors.set(row, vector)
    every = np.concatenate([first, later])
    recalls = []
    for query in around(new_topics, 60):
        found, _ = vectors.search(query, 10)
        truth = every @ query
        recalls.append(np.mean(truth[found] >= np.sort(truth)[-10] - 1e-6))
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    assert vectors._ann.size == len(every)  # the later rows joined the index (pending beyond its limit)


def test_the_index_kind_is_chosen_by_the_data() -> None:
    """Well-clustered vectors: a few IVF lists find the neighbours, so IVF stays. Vectors with no
    clusters to speak of would need most lists probed: a graph is built instead."""
    rng = np.random.default_rng(4)
    dim = 48
    centers = rng.standard_normal((400, dim))  # about a cluster per IVF list
    tight = centers[rng.integers(0, 400, 12_000)] + 0.1 * rng.standard_normal((12_000, dim))
    diffuse = rng.standard_normal((12_000, dim))
    for data, expected in ((tight, "ivf"), (diffuse, "hnsw")):
        data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
        vectors = VectorSet(dim, exact_limit=500)
        for row, vector in enumerate(data):
            vectors.set(row, vector)
        vectors.search(data[0], 10)
        assert vectors.index_kind == expected


@pytest.mark.slow
@pytest.mark.text
def test_recall_on_real_minilm_vectors_of_sentences() -> None:
    """The graph path on what users store (MiniLM vectors of English text, not synthetic clusters),
    with held-out sentences as queries: an IVF index probing 1/32 of its lists found 0.89 on such
    vectors."""
    from embeddings.text import TextEncoder

    vectors = TextEncoder().encode(stdlib_sentences(4_100)).astype(np.float32)
    stored, queries = vectors[:4_000], vectors[4_000:]
    index = VectorSet(stored.shape[1], exact_limit=300)
    for row, vector in enumerate(stored):
        index.set(row, vector)
    recalls = []
    for query in queries:
        found, _ = index.search(query, 10)
        truth = stored @ query
        recalls.append(np.mean(truth[found] >= np.sort(truth)[-10] - 1e-6))
    assert np.mean(recalls) >= 0.95, np.mean(recalls)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_an_index_rebuilt_for_tombstones_or_growth_answers_exactly(kind: str) -> None:
    """Past half of its entries dead, or past REBUILD_GROWTH times its size, an index is rebuilt
    from the live rows; answers stay those of brute force (looking at everything)."""
    rng = np.random.default_rng(13)
    vectors = VectorSet(DIM, exact_limit=100, breadth=10_000, kind=kind)
    truth: dict[int, np.ndarray] = {}

    def check() -> None:
        rows = np.array(sorted(truth))
        matrix = np.stack([truth[r] for r in rows])
        for query in unit(rng, 3):
            found, _ = vectors.search(query, 10)
            assert found.tolist() == rows[np.lexsort((rows, -(matrix @ query)))[:10]].tolist()

    for row, vector in enumerate(unit(rng, 1_000)):
        vectors.set(row, vector)
        truth[row] = vector
    check()  # the first build, over 1,000 rows
    built = vectors._ann
    for row, vector in enumerate(unit(rng, 4_500), start=1_000):  # grows past 4x: a rebuild
        vectors.set(row, vector)
        truth[row] = vector
    check()
    assert vectors._ann is not built and vectors._ann.size == 5_500
    built = vectors._ann
    for row in range(0, 5_500, 2):  # half the rows change their vector, a few more are dropped
        vectors.set(row, unit(rng, 1)[0])
        truth[row] = vectors._rows[row].copy()
    for row in range(1, 600, 2):
        vectors.drop(row)
        truth.pop(row)
    check()
    assert vectors._ann is not built and vectors._dead == 0 and vectors._ann.size == len(truth)


@pytest.mark.parametrize("exact_limit", [5000, 8])
def test_scores_stay_cosines_for_rows_a_little_longer_than_unit(exact_limit: int) -> None:
    """Reduced-resolution rows come back a hair off unit length; a score never leaves [-1, 1]."""
    rng = np.random.default_rng(2)
    vectors = VectorSet(16, exact_limit)
    rows = rng.standard_normal((40, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    for row, vector in enumerate(rows):
        vectors.set(row, vector * np.float32(1.0004))
    found, scores = vectors.search(rows[3], 40)
    assert found[0] == 3 and scores.max() == 1.0 and scores.min() >= -1.0
    opposite = vectors.similarities(-rows[3], np.arange(40))
    assert opposite.min() == -1.0 and opposite.max() <= 1.0


def test_vectors_no_index_finds_well_are_searched_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """When no breadth of IVF or HNSW reaches the recall the calibration asks (uniform vectors
    on a high-dimensional sphere do that at 10^5 rows; here the bar is set out of reach),
    searches go exact, and a snapshot keeps that."""
    monkeypatch.setattr("indices.vectors.CALIBRATION_RECALL", 1.01)
    rng = np.random.default_rng(4)
    rows = rng.standard_normal((1500, 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    vectors = VectorSet(32, exact_limit=300)
    for row, vector in enumerate(rows):
        vectors.set(row, vector)
    queries = rng.standard_normal((20, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    copy = VectorSet(32, exact_limit=300)
    for query in queries:
        found, _ = vectors.search(query, 10)
        assert sorted(found.tolist()) == sorted(np.argsort(-(rows @ query))[:10].tolist())
    assert vectors._exact_only  # noqa: SLF001
    copy.from_arrays("v", vectors.to_arrays("v"))
    assert copy._exact_only  # noqa: SLF001


def test_rows_without_vectors_hold_no_block_and_the_first_vector_makes_one() -> None:
    """Most tiers hold no vector at all (no state vectors, no embeddings of your own): their
    rows cost a flag each, not a dimension-wide row of zeros, in memory and in a saved file."""
    empty = VectorSet(DIM)
    for row in range(10_000):
        empty.set(row, None)
    assert empty.nbytes() < 200_000 and empty.to_arrays("v")["v_rows"].shape == (0, DIM)
    restored = VectorSet(DIM)
    restored.from_arrays("v", empty.to_arrays("v"))
    assert len(restored) == 0 and restored.search(np.ones(DIM, dtype=np.float32) / DIM**0.5, 3)[0].size == 0

    vectors = unit(np.random.default_rng(4), 3)
    for offset, vector in zip((10_000, 10_500, 20_000), vectors):
        empty.set(offset, vector)
    rows, scores = empty.search(vectors[1], 1)
    assert rows.tolist() == [10_500] and scores[0] == pytest.approx(1.0, abs=1e-5)
    again = VectorSet(DIM)
    again.from_arrays("v", empty.to_arrays("v"))
    assert again.search(vectors[2], 1)[0].tolist() == [20_000] and len(again) == 3


def test_vectors_whose_neighbours_are_hardly_nearer_get_no_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uniform vectors on a 384-d sphere (relative contrast ~1.1): once IVF falls short, no
    HNSW graph is built (it would not find them either, at a build of ~40 s per 10^5 rows);
    searches are exact. Clustered vectors of the same size still get their index."""
    built: list[str] = []
    original = vectors_module.Approximate.hnsw
    monkeypatch.setattr(vectors_module.Approximate, "hnsw",
                        staticmethod(lambda *a, **kw: built.append("hnsw") or original(*a, **kw)))
    rng = np.random.default_rng(9)
    rows = rng.standard_normal((6000, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    uniform = VectorSet(384, exact_limit=1000)
    for row, vector in enumerate(rows):
        uniform.set(row, vector)
    query = rows[17] + 0.5 * rng.standard_normal(384).astype(np.float32) / np.sqrt(384)
    found, _ = uniform.search(query / np.linalg.norm(query), 10)
    assert sorted(found.tolist()) == sorted(np.argsort(-(rows @ query))[:10].tolist())
    assert uniform._exact_only and built == []  # noqa: SLF001

    centers = rng.standard_normal((256, 384))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    clustered = centers[rng.integers(0, 256, 6000)] + 0.7 * rng.standard_normal((6000, 384)) / np.sqrt(384)
    clustered = (clustered / np.linalg.norm(clustered, axis=1, keepdims=True)).astype(np.float32)
    grouped = VectorSet(384, exact_limit=1000)
    for row, vector in enumerate(clustered):
        grouped.set(row, vector)
    grouped.search(clustered[3], 10)
    assert not grouped._exact_only and grouped.index_kind is not None  # noqa: SLF001
