"""Recall@10 of each stored vector resolution against exact float32 brute force.

Two data sets: clustered synthetic 384-d unit vectors, and real all-MiniLM-L6-v2 vectors of a
few hundred generated sentences. Database vectors go through reduce() and restore(); queries stay
float32 (what a search does). "rerank@40" is the recall a search reaches when it takes the
reduced top 40 and re-ranks them with full vectors. Also prints bytes per vector and the time to
reduce and restore. Run: `.venv/bin/python benchmarks/bench_resolution.py`.
"""

from __future__ import annotations

import itertools
import random
import time

import numpy as np

from embeddings.resolution import RESOLUTIONS, reduce, restore, stored_size

K = 10
RERANK_POOL = 40


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit vectors around random centres; ``spread`` is the noise per dimension relative to a
    centre's (0.5: cosine about 0.8 within a cluster, 1.0: about 0.5)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32)


def sentences(count: int, seed: int) -> list[str]:
    """Distinct sentences an agent might remember, from a seeded mix of subjects and events."""
    subjects = ["the trader", "a scout", "my neighbour", "the farmer", "an old wolf", "the guard",
                "a child", "the blacksmith", "our leader", "a stranger", "the healer", "the miner"]
    verbs = ["offered to swap", "asked about", "stole", "was carrying", "hid", "bought",
             "sold", "dropped", "found", "carefully repaired", "refused to share", "counted"]
    objects = ["some wood", "three stones", "a loaf of bread", "the gold coins", "a sword",
               "fresh water", "a map of the valley", "iron ore", "healing herbs", "a torch",
               "the lumber pile", "a basket of apples"]
    places = ["near the river", "at the market", "in the forest", "by the eastern hills",
              "inside the cave", "at dawn", "during the storm", "behind the mill", "", "",
              "on the bridge", "after the feast"]
    combos = list(itertools.product(subjects, verbs, objects, places))
    random.Random(seed).shuffle(combos)
    return [" ".join(part for part in combo if part) + "." for combo in combos[:count]]


def top_k(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries @ database.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def recall(exact_db: np.ndarray, queries: np.ndarray, found: np.ndarray, k: int) -> float:
    """Share of found ids scoring at least the exact k-th score (so ties count as hits)."""
    exact_scores = queries @ exact_db.T
    kth = -np.partition(-exact_scores, k - 1, axis=1)[:, k - 1:k]
    found_scores = np.take_along_axis(exact_scores, found[:, :k], axis=1)
    return float((found_scores >= kth - 1e-6).mean())


def measure(name: str, database: np.ndarray, queries: np.ndarray) -> list[str]:
    lines = []
    dim = database.shape[1]
    for resolution in RESOLUTIONS:
        started = time.perf_counter()
        blobs = reduce(database, resolution)
        reduced_at = time.perf_counter()
        restored = restore(blobs, resolution, dim)
        restored_at = time.perf_counter()
        plain = recall(database, queries, top_k(restored, queries, K), K)
        pool = top_k(restored, queries, RERANK_POOL)
        exact_in_pool = np.einsum("qd,qkd->qk", queries, database[pool])
        reranked = np.take_along_axis(pool, np.argsort(-exact_in_pool, axis=1), axis=1)
        rerank = recall(database, queries, reranked, K)
        error = float(np.abs(restored - database).max())
        per_vector_us = 1e6 / len(database)
        lines.append(
            f"{name:<28} {resolution:<10} {stored_size(dim, resolution):>6} B  "
            f"recall@10 {plain:.4f}  rerank@{RERANK_POOL} {rerank:.4f}  max|err| {error:.2e}  "
            f"reduce {(reduced_at - started) * per_vector_us:.2f} us/vec  "
            f"restore {(restored_at - reduced_at) * per_vector_us:.2f} us/vec"
        )
    return lines


def main() -> None:
    rows = []
    data = clustered(50_000 + 500, 384, clusters=200, spread=0.5, seed=1)
    rows += measure("clustered 50k x 384 (tight)", data[:50_000], data[50_000:])
    data = clustered(50_000 + 500, 384, clusters=200, spread=1.0, seed=2)
    rows += measure("clustered 50k x 384 (loose)", data[:50_000], data[50_000:])

    from embeddings.text import TextEncoder

    texts = sentences(700, seed=3)
    started = time.perf_counter()
    vectors = TextEncoder().encode(texts)
    encode_s = time.perf_counter() - started
    rows += measure("MiniLM 600 sentences", vectors[:600], vectors[600:])

    print(f"queries are float32; K={K}; MiniLM encoded {len(texts)} sentences in {encode_s:.1f} s "
          "(model load included)")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
