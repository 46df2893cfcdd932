"""Vector resolutions: sizes, round trips, bad input, and recall against exact float32 search."""

from __future__ import annotations

import numpy as np
import pytest

from embeddings.resolution import RESOLUTIONS, dimension, reduce, restore, restore_one, stored_size
from embeddings.text import TextEncoder

DIM = 384
K = 10


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(database: np.ndarray, restored: np.ndarray, queries: np.ndarray, k: int = K) -> float:
    """Share of the top k over ``restored`` that score at least the exact k-th best (ties are hits)."""
    exact = queries @ database.T
    kth = -np.partition(-exact, k - 1, axis=1)[:, k - 1:k]
    found = np.argpartition(-(queries @ restored.T), k - 1, axis=1)[:, :k]
    return float((np.take_along_axis(exact, found, axis=1) >= kth - 1e-6).mean())


def test_each_resolution_is_smaller_than_the_one_before():
    assert RESOLUTIONS == ("full", "compressed", "abstract")
    sizes = [stored_size(DIM, r) for r in RESOLUTIONS]
    assert sizes == [4 * DIM, 2 * DIM, 4 + DIM + DIM // 2]
    vectors = clustered(3, DIM, 2, 0.5, seed=0)
    for resolution, size in zip(RESOLUTIONS, sizes):
        blobs = reduce(vectors, resolution)
        assert [len(b) for b in blobs] == [size] * 3 and all(type(b) is bytes for b in blobs)


def test_full_round_trips_exactly_and_the_others_within_their_precision():
    vectors = clustered(200, DIM, 10, 0.5, seed=1) * np.float32(3.0)
    full = restore(reduce(vectors, "full"), "full", DIM)
    assert full.dtype == np.float32 and full.tobytes() == vectors.tobytes()
    compressed = restore(reduce(vectors, "compressed"), "compressed", DIM)
    np.testing.assert_allclose(compressed, vectors, rtol=2**-10, atol=1e-7)
    abstract = restore(reduce(vectors, "abstract"), "abstract", DIM)
    step = np.abs(vectors).max(axis=1, keepdims=True) / 127
    assert (np.abs(abstract - vectors) <= step / 30 + 1e-6).all()  # int8 codes refined by a 4-bit residual
    for restored in (compressed, abstract):
        assert restored.shape == (200, DIM) and restored.dtype == np.float32


def test_reduce_is_deterministic_and_bytes_are_little_endian():
    vectors = np.array([[1.0, -0.5, 0.25, 0.0]], dtype=np.float32)
    assert reduce(vectors, "full") == [np.array([1.0, -0.5, 0.25, 0.0], dtype="<f4").tobytes()]
    assert reduce(vectors, "compressed") == [np.array([1.0, -0.5, 0.25, 0.0], dtype="<f2").tobytes()]
    scale = np.array([1.0 / 127], dtype="<f4").tobytes()
    # -0.5 is -63.5 steps: code -64, residual +0.5 step = 7.5 fifteenths, clipped to 7, stored 15;
    # 0.25 is 31.75 steps: code 32, residual -3.75 -> -4, stored 4; 1.0 and 0.0 are exact (stored
    # 8); dimension 2i sits in the low nibble of byte i
    codes = np.array([127, -64, 32, 0], dtype=np.int8).tobytes()
    assert reduce(vectors, "abstract") == [scale + codes + bytes([8 | 15 << 4, 4 | 8 << 4])]
    data = clustered(50, 64, 5, 1.0, seed=2)
    for resolution in RESOLUTIONS:
        assert reduce(data, resolution) == reduce(data.copy(), resolution)


def test_zero_vectors_and_float64_or_list_input():
    zeros = np.zeros((2, 8))
    for resolution in RESOLUTIONS:
        assert not restore(reduce(zeros, resolution), resolution, 8).any()
        as_list = reduce([[0.5, -1.0, 2.0]], resolution)
        np.testing.assert_allclose(restore(as_list, resolution, 3), [[0.5, -1.0, 2.0]], atol=0.01)


def test_no_rows_and_no_blobs():
    for resolution in RESOLUTIONS:
        assert reduce(np.zeros((0, DIM), dtype=np.float32), resolution) == []
        empty = restore([], resolution, DIM)
        assert empty.shape == (0, DIM) and empty.dtype == np.float32


@pytest.mark.parametrize(
    "vectors, resolution, error, message",
    [
        (np.ones((2, 4)), "tiny", ValueError, "unknown resolution 'tiny'"),
        (np.ones(4), "full", ValueError, "2-D"),
        (np.ones((2, 0)), "full", ValueError, "2-D"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), "abstract", ValueError, "row 0 has NaN"),
        (np.array([[1.0, 1.0], [np.inf, 2.0]]), "full", ValueError, "row 1 has NaN or infinite"),
        (np.array([[1.0, 1.0], [1e5, 2.0]]), "compressed", ValueError, "row 1 .* float16"),
        ([["a", "b"]], "full", ValueError, "numeric"),
    ],
)
def test_bad_vectors_are_a_clear_error(vectors, resolution, error, message):
    with pytest.raises(error, match=message):
        reduce(vectors, resolution)


def test_bad_blobs_or_dims_are_a_clear_error():
    blobs = reduce(np.ones((2, 8), dtype=np.float32), "compressed")
    with pytest.raises(ValueError, match="blob 1 has 15 bytes; a 8-d compressed vector has 16"):
        restore([blobs[0], blobs[1][:-1]], "compressed", 8)
    with pytest.raises(ValueError, match="has 16 bytes; a 8-d full vector has 32"):
        restore(blobs, "full", 8)
    with pytest.raises(TypeError, match="blob 0 is 'str'"):
        restore(["x" * 16], "compressed", 8)
    for dim in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="dim"):
            stored_size(dim, "full")
    with pytest.raises(ValueError, match="unknown resolution"):
        restore(blobs, "lossy", 8)
    restored = restore([bytearray(blobs[0]), memoryview(blobs[1])], "compressed", 8)
    assert restored.shape == (2, 8)


@pytest.mark.parametrize("spread, floors", [(0.5, (1.0, 0.99, 0.95)), (1.0, (1.0, 0.99, 0.97))])
def test_recall_at_10_on_clustered_vectors(spread, floors):
    data = clustered(10_000 + 100, DIM, clusters=100, spread=spread, seed=3)
    database, queries = data[:10_000], data[10_000:]
    for resolution, floor in zip(RESOLUTIONS, floors):
        restored = restore(reduce(database, resolution), resolution, DIM)
        assert recall_at_k(database, restored, queries) >= floor, resolution


@pytest.mark.text
def test_recall_at_10_on_real_minilm_vectors():
    words = ["wood", "stone", "bread", "gold", "water", "iron", "herbs", "apples", "a map", "a torch"]
    people = ["the trader", "a scout", "the farmer", "the guard", "a stranger", "the healer"]
    acts = ["offered to swap", "asked about", "stole", "hid", "sold", "found"]
    texts = [f"{p} {a} {w} near the river." for p in people for a in acts for w in words]
    vectors = TextEncoder().encode(texts)
    database, queries = vectors[:330], vectors[330:]
    for resolution, floor in zip(RESOLUTIONS, (1.0, 0.99, 0.95)):
        restored = restore(reduce(database, resolution), resolution, DIM)
        assert recall_at_k(database, restored, queries) >= floor, resolution


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_restore_one_and_dimension_agree_with_restore(resolution):
    """The unchecked one-vector path (result dicts, indices) reads the same layout as restore."""
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((3, 24)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    blobs = reduce(vectors, resolution)
    assert [dimension(blob, resolution) for blob in blobs] == [24, 24, 24]
    assert np.array_equal(np.stack([restore_one(blob, resolution) for blob in blobs]), restore(blobs, resolution, 24))
