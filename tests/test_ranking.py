"""Ranked retrieval (query().rank_by): the weighted sum of recency, importance and relevance,
each min-max normalised over the memories that pass, equals a brute force over every memory's
answered form, across the tiers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from memory import InvalidInputError

AGENT = "ranker"
N = 90
DIM = 16


@pytest.fixture
def spread(make_api: Any) -> Any:
    api = make_api(stm_config={"memory_limit": 15}, im_config={"memory_limit": 30}, cleanup_interval=10**6,
                   search_config={"vector_dim": DIM, "state_vectors": False})
    rng = np.random.default_rng(3)
    api.store_many([{"agent_id": AGENT, "step_number": step, "priority": float(rng.uniform(0.01, 1.0)),
                     "data": {"kind": "even" if step % 2 == 0 else "odd"},
                     "embedding": rng.standard_normal(DIM).tolist()} for step in range(N)])
    api.force_memory_maintenance(AGENT)
    tiers = api.get_memory_statistics(AGENT)["tiers"]
    assert all(tiers[tier]["count"] for tier in ("stm", "im", "ltm")), tiers
    return api


def vector_of(memory: dict[str, Any]) -> np.ndarray:
    found = next(v for v in memory["embeddings"].values() if v is not None)
    return np.asarray(found, dtype=np.float64)


def brute_force(memories: list[dict[str, Any]], query: np.ndarray, weights: tuple[float, float, float],
                decay: float) -> dict[str, float]:
    """Scores by the definition, from what the engine answers for each memory."""
    steps = np.array([m["step_number"] for m in memories], dtype=np.float64)
    parts = [decay ** (steps.max() - steps),
             np.array([m["metadata"]["importance_score"] for m in memories]),
             np.array([vector_of(m) @ query for m in memories])]
    total = np.zeros(len(memories))
    for weight, part in zip(weights, parts):
        spread = part.max() - part.min()
        total += weight * ((part - part.min()) / spread if spread > 0 else 0)
    return {m["memory_id"]: float(s) for m, s in zip(memories, total)}


@pytest.mark.parametrize("weights, decay", [((1.0, 2.0, 3.0), 0.995), ((0.0, 0.0, 1.0), 0.9), ((2.0, 0.5, 0.0), 0.5)])
def test_weighted_ranking_equals_a_brute_force_over_every_tier(spread, weights, decay):
    query = np.random.default_rng(8).standard_normal(DIM)
    query /= np.linalg.norm(query)
    everything = list(spread.retrieve_by_time_range(AGENT, 0, N))
    expected = brute_force(everything, query, weights, decay)
    recency, importance, relevance = weights
    answer = spread.query(AGENT).similar_to_embedding(query).rank_by(
        recency=recency, importance=importance, relevance=relevance, decay=decay).top(10)
    got = [(m["memory_id"], m["rank_score"]) for m in answer]
    assert len(got) == 10
    for memory_id, score in got:
        assert math.isclose(score, expected[memory_id], rel_tol=1e-4, abs_tol=1e-5)
    tenth = sorted(expected.values(), reverse=True)[9]
    assert all(score >= tenth - 1e-5 for _, score in got)  # the best ten, ties tolerated
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_filters_narrow_what_is_ranked_and_normalised(spread):
    query = np.ones(DIM) / math.sqrt(DIM)
    evens = list(spread.retrieve_by_attributes(AGENT, {"kind": "even"}))
    expected = brute_force(evens, query, (0.5, 2.0, 3.0), 0.995)
    answer = spread.query(AGENT).where({"kind": "even"}).similar_to_embedding(query).rank_by("generative_agents").all()
    assert len(answer) == len(evens) == N // 2
    assert [m["memory_id"] for m in answer] == sorted(expected, key=lambda i: (-expected[i], i))
    page = spread.query(AGENT).where({"kind": "even"}).similar_to_embedding(query).rank_by(
        "generative_agents").top(5, offset=5)
    assert [m["memory_id"] for m in page] == [m["memory_id"] for m in answer][5:10]


def test_recency_alone_is_newest_first_and_importance_alone_is_most_important_first(spread):
    newest = [m["step_number"] for m in spread.query(AGENT).rank_by(recency=1.0).top(5)]
    assert newest == [89, 88, 87, 86, 85]
    heaviest = [m["memory_id"] for m in spread.query(AGENT).rank_by(importance=1.0).top(7)]
    assert heaviest == [m["memory_id"] for m in spread.retrieve_most_important(AGENT, 7)]


def test_the_agent_memory_server_preset_is_relevance_with_a_recency_boost(spread):
    query = np.random.default_rng(5).standard_normal(DIM)
    query /= np.linalg.norm(query)
    everything = list(spread.retrieve_by_time_range(AGENT, 0, N))
    expected = brute_force(everything, query, (0.2, 0.0, 0.8), 0.995)
    answer = spread.query(AGENT).similar_to_embedding(query).rank_by("agent_memory_server").top(3)
    assert [m["memory_id"] for m in answer] == sorted(expected, key=lambda i: (-expected[i], i))[:3]
    assert all("similarity_score" in m for m in answer)


@pytest.mark.parametrize("call, message", [
    (lambda q: q.rank_by(), "at least one positive weight"),
    (lambda q: q.rank_by("nope"), "preset must be one of"),
    (lambda q: q.rank_by("generative_agents", recency=1.0), "not both"),
    (lambda q: q.rank_by(recency=-1.0), "finite number >= 0"),
    (lambda q: q.rank_by(importance=float("nan")), "finite number >= 0"),
    (lambda q: q.rank_by(recency=True), "finite number >= 0"),
    (lambda q: q.rank_by(recency=1.0, decay=0.0), "decay"),
    (lambda q: q.rank_by(relevance=1.0).top(3), "needs similar_to"),
])
def test_bad_rankings_are_refused_with_the_reason(spread, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(spread.query(AGENT))
