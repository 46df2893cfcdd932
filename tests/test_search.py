"""Similarity, place and combined queries across the tiers, checked against brute force.

Data is clustered (as real embeddings are), spread over STM, IM and LTM by maintenance, and the
exact-search limit is set low so the FAISS HNSW path answers too. Recall is measured against an
exact numpy search over every memory; ties are tolerated by comparing scores, not ids.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from support import TEST_REDIS_URL, real_redis
from tiers.errors import InvalidInputError, MemoryConfigException

DIM = 32
AGENT = "searcher"
TYPES = ("state", "action", "interaction")


def clustered(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((12, DIM))
    points = centers[rng.integers(0, 12, n)] + 0.35 * rng.standard_normal((n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def loaded(make_api: Callable[..., AgentMemoryAPI]) -> tuple[AgentMemoryAPI, np.ndarray, list[dict[str, Any]]]:
    """2,400 memories of one agent over the three tiers, each with a vector and most with a place."""
    api = make_api(
        search_config={"vector_dim": DIM, "exact_limit": 300, "text_embedding": "off"},
        stm_config={"memory_limit": 400}, im_config={"memory_limit": 800}, cleanup_interval=10**6,
    )
    vectors = clustered(2400)
    rng = np.random.default_rng(9)
    rows = []
    for step in range(2400):
        data: dict[str, Any] = {"kind": TYPES[step % 3], "tag": int(rng.integers(0, 5))}
        if step % 7:
            data["position"] = [float(rng.uniform(0, 50)), float(rng.uniform(0, 50))]
        rows.append({"agent_id": AGENT, "data": data, "step_number": step, "memory_type": TYPES[step % 3],
                     "priority": float(rng.uniform()), "embedding": vectors[step]})
    for first in range(0, 2400, 300):
        api.store_many(rows[first:first + 300])
        api.force_memory_maintenance(AGENT)
    tiers = api.get_memory_statistics(AGENT)["tiers"]
    assert all(tiers[t]["count"] > 0 for t in ("stm", "im", "ltm")), tiers
    return api, vectors, rows


def exact_scores(vectors: np.ndarray, query: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = vectors @ (query / np.linalg.norm(query))
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    return scores


def test_knn_recall_against_brute_force(loaded: Any) -> None:
    api, vectors, _ = loaded
    queries = clustered(40, seed=11)
    recalls = []
    for query in queries:
        found = api.search_by_embedding(AGENT, query, k=10)
        assert len(found) == 10
        truth = np.sort(exact_scores(vectors, query))[::-1][:10]
        got = np.array([m["similarity_score"] for m in found])
        assert np.all(np.diff(got) <= 1e-6), "results are best first"
        recalls.append(np.mean(got >= truth[-1] - 1e-3))  # IM and LTM keep reduced vectors: small score error
        steps = [m["step_number"] for m in found]
        assert len(set(steps)) == 10
    assert np.mean(recalls) >= 0.95


def test_filtered_knn_never_short_and_exact(loaded: Any) -> None:
    api, vectors, rows = loaded
    kinds = np.array([r["memory_type"] for r in rows])
    for query in clustered(15, seed=12):
        found = api.search_by_embedding(AGENT, query, k=25, memory_type="interaction")
        assert len(found) == 25 and all(m["metadata"]["memory_type"] == "interaction" for m in found)
        truth = np.sort(exact_scores(vectors, query, kinds == "interaction"))[::-1][:25]
        got = np.array([m["similarity_score"] for m in found])
        assert np.mean(got >= truth[-1] - 1e-3) >= 0.99


def test_combined_query_matches_brute_force(loaded: Any) -> None:
    api, vectors, rows = loaded
    query = vectors[1234]
    found = (api.query(AGENT).between(500, 2000).of_type("action", "state").where({"tag": 2})
             .similar_to_embedding(query).top(8))
    allowed = np.array([500 <= r["step_number"] <= 2000 and r["memory_type"] in ("action", "state")
                        and r["data"]["tag"] == 2 for r in rows])
    truth = np.sort(exact_scores(vectors, query, allowed))[::-1][:8]
    assert len(found) == 8
    for memory in found:
        assert 500 <= memory["step_number"] <= 2000 and memory["contents"]["tag"] == 2
    assert np.all(np.array([m["similarity_score"] for m in found]) >= truth[-1] - 1e-3)


def test_location_queries_equal_brute_force(loaded: Any) -> None:
    api, _, rows = loaded
    placed = [(r["step_number"], r["data"]["position"], r["memory_type"]) for r in rows if "position" in r["data"]]
    center, radius = (20.0, 31.0), 6.5
    expected = sorted((math.dist(p, center), s) for s, p, _ in placed if math.dist(p, center) <= radius)
    found = api.retrieve_by_location(AGENT, center, radius)
    assert [m["step_number"] for m in found] == [s for _, s in expected]
    assert all(abs(m["distance"] - d) < 1e-9 for m, (d, _) in zip(found, expected))
    actions = api.retrieve_by_location(AGENT, center, radius, memory_type="action")
    assert [m["step_number"] for m in actions] == [s for d, s in expected if rows[s]["memory_type"] == "action"]
    nearest = api.retrieve_nearest(AGENT, (3.0, 47.0), k=7)
    truth = sorted((math.dist(p, (3.0, 47.0)), s) for s, p, _ in placed)[:7]
    assert [m["step_number"] for m in nearest] == [s for _, s in truth]
    states = api.query(AGENT).of_type("state").nearest_to((3.0, 47.0)).top(4)
    truth = sorted((math.dist(p, (3.0, 47.0)), s) for s, p, kind in placed if kind == "state")[:4]
    assert [m["step_number"] for m in states] == [s for _, s in truth]
    boxed = api.query(AGENT).in_box((10, 20), (14.5, 26)).all()
    inside = sorted(s for s, p, _ in placed if 10 <= p[0] <= 14.5 and 20 <= p[1] <= 26)
    assert [m["step_number"] for m in boxed] == inside and inside  # by step when nothing ranks
    in_ltm = api.query(AGENT).in_box((10, 20), (14.5, 26)).in_tiers(["ltm"]).all()
    assert in_ltm and {m["tier"] for m in in_ltm} == {"ltm"} and len(in_ltm) < len(inside)
    boxed_nearest = api.query(AGENT).in_box((10, 20), (40, 45)).nearest_to((3.0, 47.0)).top(5)
    truth = sorted((math.dist(p, (3.0, 47.0)), s) for s, p, _ in placed if 10 <= p[0] <= 40 and 20 <= p[1] <= 45)[:5]
    assert [m["step_number"] for m in boxed_nearest] == [s for _, s in truth]
    assert all(abs(m["distance"] - d) < 1e-9 for m, (d, _) in zip(boxed_nearest, truth))


def test_place_filters_and_similarity_combine_like_brute_force(loaded: Any) -> None:
    api, vectors, rows = loaded
    query = vectors[77]
    center, radius = (25.0, 25.0), 15.0
    found = (api.query(AGENT).near(center, radius).in_box((12, 12), (45, 30)).between(300, 2100)
             .of_type("state", "interaction").similar_to_embedding(query).top(12))
    allowed = np.array([
        "position" in r["data"] and math.dist(r["data"]["position"], center) <= radius
        and 12 <= r["data"]["position"][0] <= 45 and 12 <= r["data"]["position"][1] <= 30
        and 300 <= r["step_number"] <= 2100 and r["memory_type"] in ("state", "interaction") for r in rows])
    assert allowed.sum() > 12
    truth = np.sort(exact_scores(vectors, query, allowed))[::-1][:12]
    assert len(found) == 12 and all(allowed[m["step_number"]] for m in found)
    assert np.all(np.array([m["similarity_score"] for m in found]) >= truth[-1] - 1e-3)
    assert all(abs(m["distance"] - math.dist(rows[m["step_number"]]["data"]["position"], center)) < 1e-9 for m in found)


def test_similar_states_ranks_the_nearest_state_first(make_api: Callable[..., AgentMemoryAPI]) -> None:
    api = make_api(search_config={"text_embedding": "off"})
    for step in range(60):
        api.store_agent_state("walker", {"position": [step, step % 7], "health": 1 - step / 100}, step)
    best = api.retrieve_similar_states("walker", {"position": [30, 2], "health": 0.7}, k=3)
    assert best[0]["step_number"] == 30 and best[0]["similarity_score"] > 0.99
    assert [m["similarity_score"] for m in best] == sorted((m["similarity_score"] for m in best), reverse=True)


def test_results_are_cached_until_the_agent_changes(make_api: Callable[..., AgentMemoryAPI]) -> None:
    api = make_api(search_config={"text_embedding": "off"})
    api.store_agent_state("c", {"position": [1, 1]}, 1)
    assert len(api.retrieve_by_location("c", (1, 1), 1)) == 1
    hits = api._cache.hits
    assert len(api.retrieve_by_location("c", (1, 1), 1)) == 1 and api._cache.hits == hits + 1
    api.store_agent_state("c", {"position": [1, 2]}, 2)
    assert len(api.retrieve_by_location("c", (1, 1), 1)) == 2  # the write invalidated the answer


def test_bad_input_gets_a_clear_error(make_api: Callable[..., AgentMemoryAPI]) -> None:
    api = make_api(search_config={"vector_dim": 8, "text_embedding": "off"})
    api.store_agent_state("b", {"position": [0, 0]}, 1, embedding=[1.0] * 8)
    cases = [
        (lambda: api.search_by_embedding("b", [1.0] * 7), "7 dimensions"),
        (lambda: api.search_by_embedding("b", [float("nan")] * 8), "NaN"),
        (lambda: api.search_by_embedding("b", [float("inf")] + [0.0] * 7), "infinite"),
        (lambda: api.search_by_embedding("b", [1.0] * 8, k=0), "k must be"),
        (lambda: api.search_by_embedding("b", [1.0] * 8, memory_tiers=["disk"]), "unknown memory tier"),
        (lambda: api.retrieve_by_location("b", (1, 2, 3, 4), 1), "2 or 3"),
        (lambda: api.retrieve_by_location("b", ("x", 1), 1), "2 or 3"),
        (lambda: api.retrieve_by_location("b", (1, 2), -1), "radius"),
        (lambda: api.query("b").in_box((5, 5), (1, 9)).all(), "low corner"),
        (lambda: api.store_agent_state("b", {}, 2, embedding=[1.0] * 9), "9 dimensions"),
        (lambda: api.retrieve_similar_states("b", "not a dict"), "dict"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidInputError, match=words):
            call()
    assert api.get_memory_statistics("b")["total_memories"] == 1  # nothing stored was lost
    api.store_agent_state("b", {"position": "north"}, 3)  # not a position: stored, not placed
    assert [m["step_number"] for m in api.retrieve_by_location("b", (0, 0), 100)] == [1]


@pytest.mark.text
def test_a_query_sees_what_another_process_stored(tmp_path: Any) -> None:
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    config = MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data"), search_config={"vector_dim": 8})
    script = textwrap.dedent(f"""
        from memory import AgentMemoryAPI
        from memory.config import MemoryConfig
        config = MemoryConfig(redis_url={TEST_REDIS_URL!r}, key_prefix={prefix!r}, data_dir={str(tmp_path / 'data')!r},
                              search_config={{"vector_dim": 8}})
        with AgentMemoryAPI(config) as other:
            other.store_agent_state("shared", {{"position": [0, 1]}}, 2, embedding=[0.0, 1.0] + [0.0] * 6)
            other.store_agent_interaction("shared", {{"content": "the bridge over the river collapsed"}}, 3)
    """)
    try:
        with AgentMemoryAPI(config, redis_client=client) as api:
            api.store_agent_state("shared", {"position": [0, 0]}, 1, embedding=[1.0] + [0.0] * 7)
            assert len(api.retrieve_nearest("shared", (0, 0), k=5)) == 1  # this process's index is built
            subprocess.run([sys.executable, "-c", script], check=True, cwd=str(Path(__file__).parents[1]))
            near = api.retrieve_nearest("shared", (0, 1), k=5)
            assert [m["step_number"] for m in near] == [2, 1]
            similar = api.search_by_embedding("shared", [0.0, 1.0] + [0.0] * 6, k=1)
            assert similar[0]["step_number"] == 2
            # the other process only queued its text; this query embeds it first
            said = api.search_by_content("shared", "a bridge fell into the water", k=1)
            assert said[0]["step_number"] == 3
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.mark.text
def test_content_search_finds_paraphrases_with_the_real_model(make_api: Callable[..., AgentMemoryAPI]) -> None:
    """MiniLM, offline; stores only queue their text, the query embeds what is pending first,
    including memories that maintenance moved to IM and LTM meanwhile."""
    api = make_api(stm_config={"memory_limit": 2}, im_config={"memory_limit": 2}, cleanup_interval=10**6)
    said = [
        "Hello, do you have any wood to trade?",
        "The weather is sunny over the lake today.",
        "I am hungry and looking for berries.",
        "A wolf attacked the sheep near the river.",
        "My pickaxe broke while mining stone.",
        "Let us meet at the market at noon.",
    ]
    for step, text in enumerate(said):
        api.store_agent_interaction("talker", {"interaction_type": "conversation", "content": text}, step)
    api.force_memory_maintenance("talker")
    assert {t: api.get_memory_statistics("talker")["tiers"][t]["count"] > 0 for t in ("stm", "im", "ltm")} == \
        {"stm": True, "im": True, "ltm": True}
    found = api.get_memory_space("talker").search_by_content("swap some lumber", k=2)
    assert found[0]["contents"]["content"] == said[0]
    assert found[0]["similarity_score"] > found[1]["similarity_score"]
    found = api.search_by_content("talker", "a predator hunted the flock", k=1)
    assert found[0]["contents"]["content"] == said[3]


def test_search_with_postgresql_as_the_long_term_tier(make_api: Callable[..., AgentMemoryAPI], postgres_engine: Any) -> None:
    api = make_api(ltm_engine=postgres_engine, search_config={"vector_dim": DIM, "text_embedding": "off"},
                   stm_config={"memory_limit": 20}, im_config={"memory_limit": 20}, cleanup_interval=10**6)
    vectors = clustered(200, seed=21)
    api.store_many({"agent_id": "pg", "data": {"position": [i % 10, i // 10]}, "step_number": i, "embedding": vectors[i]}
                   for i in range(200))
    api.force_memory_maintenance("pg")
    assert api.get_memory_statistics("pg")["tiers"]["ltm"]["count"] > 100
    found = api.search_by_embedding("pg", vectors[150], k=5)
    truth = np.sort(exact_scores(vectors, vectors[150]))[::-1][:5]
    assert found[0]["step_number"] == 150
    assert np.all(np.array([m["similarity_score"] for m in found]) >= truth[-1] - 1e-3)
    near = api.retrieve_by_location("pg", (3, 4), 1.0)
    assert sorted(m["step_number"] for m in near) == [33, 42, 43, 44, 53]


@pytest.mark.text
def test_background_embedding_empties_the_queue_without_a_query(make_api: Callable[..., AgentMemoryAPI],
                                                                redis_client: Any) -> None:
    import time

    api = make_api(search_config={"text_embedding": "background"})
    for step, text in enumerate(["wood for sale", "stone for sale", "a quiet night"]):
        api.store_agent_interaction("bg", {"content": text}, step)
    pending = api._tiers.keys.pending("bg")
    deadline = time.monotonic() + 60
    while redis_client.zcard(pending) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client.zcard(pending) == 0
    assert api.search_by_content("bg", "selling timber", k=1)[0]["step_number"] == 0


def test_the_ltm_index_persists_and_a_new_engine_reads_only_what_changed(
    make_api: Callable[..., AgentMemoryAPI], tmp_path: Any
) -> None:
    options = dict(search_config={"vector_dim": DIM, "text_embedding": "off"}, stm_config={"memory_limit": 100},
                   im_config={"memory_limit": 100}, cleanup_interval=10**6)
    first = make_api(**options)
    vectors = clustered(1600, seed=31)
    rows = [{"agent_id": "keeper", "data": {"position": [i % 40, i // 40]}, "step_number": i, "embedding": vectors[i]}
            for i in range(1600)]
    first.store_many(rows[:1400])
    first.force_memory_maintenance("keeper")
    assert first.get_memory_statistics("keeper")["tiers"]["ltm"]["count"] >= 1000
    first.search_by_embedding("keeper", vectors[0], k=3)  # builds the LTM index and saves it
    assert first._catalog.snapshots.path("keeper").exists()

    first.store_many(rows[1400:])  # after the file: new LTM rows, a changed importance
    first.force_memory_maintenance("keeper")
    oldest = first.retrieve_by_time_range("keeper", 0, 0)[0]
    first.set_importance_score("keeper", oldest["memory_id"], 0.01)

    second = make_api(**options)  # a fresh process's view: nothing in memory
    full_loads = []
    original = second._tiers.ltm.derived
    second._tiers.ltm.derived = lambda agent, ids=None, **kw: full_loads.append(ids) or original(agent, ids, **kw)
    for probe in (5, 1450, 1599):
        found = second.search_by_embedding("keeper", vectors[probe], k=1)
        assert found[0]["step_number"] == probe
    assert None not in full_loads  # LTM came from the file plus the rows changed since
    low = second.query("keeper").between(0, 0).all()
    assert low[0]["metadata"]["importance_score"] == 0.01
    assert len(second.query("keeper").all()) == 1600
    assert len(second.query("keeper").min_importance(0.5).all()) == 1599  # the index saw the change

    second.clear_agent_memory("keeper")
    third = make_api(**options)
    assert third.search_by_embedding("keeper", vectors[5], k=1) == []  # the old file no longer applies


def test_ltm_rows_written_after_redis_lost_its_data_reach_the_persisted_index(
    make_api: Callable[..., AgentMemoryAPI], redis_client: Any, prefix: str
) -> None:
    """The LTM change counter lives in Redis: when Redis restarts empty it must go on from the
    stamps SQL holds, or rows written afterwards would look older than the saved index."""
    options = dict(search_config={"text_embedding": "off"}, stm_config={"memory_limit": 10},
                   im_config={"memory_limit": 10}, ltm_config={"batch_size": 20}, cleanup_interval=10**6)
    first = make_api(**options)
    first.store_many({"agent_id": "keeper", "data": {"position": [i % 40, i // 40]}, "step_number": i}
                     for i in range(1500))
    first.force_memory_maintenance("keeper")
    first.retrieve_by_location("keeper", (20, 20), radius=3)  # builds the LTM index and saves it
    assert first._catalog.snapshots.path("keeper").exists()
    first.close()
    redis_client.delete(*redis_client.scan_iter(match=f"{prefix}*"))  # Redis restarted empty

    second = make_api(**options)
    second.store_many({"agent_id": "keeper", "data": {"position": [500 + i % 10, 500]}, "step_number": i}
                      for i in range(1500, 1700))
    second.force_memory_maintenance("keeper")
    assert second.get_memory_statistics("keeper")["tiers"]["ltm"]["count"] > 1500
    third = make_api(**options)  # a fresh process: the saved index plus what changed since
    assert len(third.retrieve_by_location("keeper", (505, 500), radius=6)) == 200
    assert len(second.retrieve_by_location("keeper", (505, 500), radius=6)) == 200


@pytest.mark.parametrize("maintained", [False, True], ids=["stm", "ltm"])
def test_memories_at_one_place_come_in_creation_order_whatever_the_tier(
    make_api: Callable[..., AgentMemoryAPI], maintained: bool
) -> None:
    """Equal distances are ordered by memory id (creation order), as the merge of tiers orders
    them, never by the order an index learnt the rows in (LTM's comes from SQL, by step)."""
    api = make_api(search_config={"text_embedding": "off"}, stm_config={"memory_limit": 1},
                   im_config={"memory_limit": 1}, cleanup_interval=10**6)
    ids = [api.store_agent_state("here", {"position": [3, 4]}, step) for step in (5, 1, 3, 4, 2)]
    api.store_agent_state("here", {"position": [9, 9]}, 0)
    if maintained:
        api.force_memory_maintenance("here")
        assert {r["tier"] for r in api.query("here").all()} >= {"ltm"}
    assert [m["memory_id"] for m in api.retrieve_nearest("here", (0, 0), k=2)] == ids[:2]
    assert [m["memory_id"] for m in api.retrieve_by_location("here", (3, 4), radius=1)] == ids
    assert [m["memory_id"] for m in api.query("here").near((3, 4), 1).top(3)] == ids[:3]


@pytest.mark.slow
def test_an_index_that_fell_behind_the_trimmed_log_rebuilds(make_api: Callable[..., AgentMemoryAPI]) -> None:
    """More than the log keeps (~20,000 ids) changes between two queries: the second query
    cannot replay them, notices the gap and rebuilds from the tiers."""
    api = make_api(search_config={"text_embedding": "off", "state_vectors": False}, cleanup_interval=10**6,
                   stm_config={"memory_limit": 100_000})
    api.store_agent_state("busy", {"position": [0, 0]}, 0)
    assert len(api.retrieve_nearest("busy", (0, 0), k=1)) == 1
    for first in range(1, 30_001, 5_000):
        api.store_many({"agent_id": "busy", "data": {"position": [i % 100, i // 100]}, "step_number": i}
                       for i in range(first, first + 5_000))
    near = api.retrieve_by_location("busy", (50, 1), 0.5)
    assert [m["step_number"] for m in near] == [150]  # from the first batch, trimmed from the log
    assert len(api.query("busy").all()) == 30_001


def test_an_index_follows_moves_between_tiers_through_the_log(make_api: Callable[..., AgentMemoryAPI]) -> None:
    """Built before maintenance, the index learns every move from the change log: afterwards
    it places each memory in the tier that holds it, as an index rebuilt from the tiers does."""
    api = make_api(search_config={"text_embedding": "off"}, stm_config={"memory_limit": 50},
                   im_config={"memory_limit": 50}, cleanup_interval=10**6)
    api.store_many({"agent_id": "mover", "data": {"position": [i, 0]}, "step_number": i} for i in range(300))
    before = {m["memory_id"]: m["tier"] for m in api.query("mover").all()}
    assert set(before.values()) == {"stm"}
    api.force_memory_maintenance("mover")
    api.store_many({"agent_id": "mover", "data": {"position": [i, 0]}, "step_number": i} for i in range(300, 400))
    api.force_memory_maintenance("mover")
    followed = {m["memory_id"]: m["tier"] for m in api.query("mover").all()}
    index = api._catalog.known("mover")
    from_log = {tier: set(index.tiers[tier].rows) for tier in ("stm", "im", "ltm")}
    api.rebuild_indices("mover")
    rebuilt = api._catalog.known("mover")
    assert from_log == {tier: set(rebuilt.tiers[tier].rows) for tier in ("stm", "im", "ltm")}
    assert len(followed) == 400 and set(followed.values()) == {"stm", "im", "ltm"}


def test_the_indices_stay_within_their_memory_budget_and_say_so(make_api):
    """Least recently used agents' indices leave once the budget is spent; an agent asked again
    is built again from the tiers, with the same answers."""
    api = make_api(search_config={"vector_dim": 8, "index_memory_mb": 1})
    rng = np.random.default_rng(4)
    for agent in range(6):
        api.store_many([{"agent_id": f"a{agent}", "step_number": i, "data": {"position": [i, agent]},
                         "embedding": rng.standard_normal(8).tolist()} for i in range(1500)])
    first = api.retrieve_nearest("a0", (3, 0), k=3)
    for agent in range(1, 6):
        api.retrieve_nearest(f"a{agent}", (0, 0), k=3)
    indices = api.get_memory_statistics("a0")["indices"]
    assert indices["budget_bytes"] == 1 << 20 and indices["bytes"] <= 1 << 20
    assert indices["evicted"] >= 1 and indices["agents"] < 6
    api.clear_cache()
    assert [m["memory_id"] for m in api.retrieve_nearest("a0", (3, 0), k=3)] == [m["memory_id"] for m in first]


VOCABULARY = {word: n for n, word in enumerate(["wood", "stone", "river", "bridge", "market", "night"])}


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic text model for tests: a bucket per vocabulary word, other words hashed
    into the rest of 64."""
    rows = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in zip(rows, texts):
        for word in text.lower().split():
            row[VOCABULARY.get(word, 8 + zlib.crc32(word.encode()) % 56)] += 1.0
        row[7] += 0.01
    return rows


def test_memories_waiting_for_a_text_vector_leave_redis_with_them(make_api, redis_client):
    """Redis queues only what STM and IM hold: a memory moved to LTM waits in LTM's queue, so
    Redis's queue stays within the tiers' capacity however long nobody asks a content query; the
    next one embeds both queues, and a promoted memory still waiting joins Redis's queue again."""
    api = make_api(search_config={"text_model": bag_of_words}, stm_config={"memory_limit": 10},
                   im_config={"memory_limit": 20}, ltm_config={"promote_threshold": 1}, cleanup_interval=10**6)
    words = ["wood", "stone", "river", "bridge", "market", "night"]
    ids = [api.store_agent_interaction("t", {"content": f"{words[i % 6]} number {i}"}, i) for i in range(200)]
    api.force_memory_maintenance("t")
    pending = api._tiers.keys.pending("t")
    tiers = api.get_memory_statistics("t")["tiers"]
    assert redis_client.zcard(pending) == tiers["stm"]["count"] + tiers["im"]["count"] <= 30
    assert len(api._tiers.ltm.text_pending("t", 1000)) == tiers["ltm"]["count"] >= 170
    api.get_memory("t", ids[0])  # read once: promoted by the next maintenance, still without a text vector
    api.force_memory_maintenance("t")
    assert redis_client.zscore(pending, ids[0]) is not None
    found = api.search_by_content("t", "bridge", k=5)
    assert found and all("bridge" in m["contents"]["content"] for m in found)
    assert redis_client.zcard(pending) == 0 and api._tiers.ltm.text_pending("t", 1000) == []


def test_a_text_model_that_fails_is_a_config_error_and_stores_are_kept(make_api):
    def broken(texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts) + 1, 4), dtype=np.float32)  # one row too many

    api = make_api(search_config={"text_model": broken})
    memory_id = api.store_agent_interaction("t", {"content": "hello"}, 1)
    with pytest.raises(MemoryConfigException, match="text_model"):
        api.search_by_content("t", "hello")
    assert api.get_memory("t", memory_id)["contents"] == {"content": "hello"}


def test_a_limit_of_zero_finds_nothing_in_every_search(make_api):
    api = make_api(search_config={"vector_dim": 8, "text_embedding": "off"})
    api.store_many([{"agent_id": "z", "step_number": i, "data": {"position": [i, 0]}, "embedding": [1.0] * 8}
                    for i in range(5)])
    assert len(api.retrieve_by_location("z", (0, 0), 10.0, limit=0)) == 0
    assert len(api.retrieve_by_location("z", (0, 0), 10.0)) == 5


def test_a_memory_placed_beyond_the_coordinate_range_is_kept_but_not_placed(make_api):
    api = make_api(search_config={"text_embedding": "off"})
    far = api.store_agent_state("f", {"position": [1e200, 0.0]}, 1)
    near = api.store_agent_state("f", {"position": [1.0, 0.0]}, 2)
    assert [m["memory_id"] for m in api.retrieve_nearest("f", (0, 0), k=5)] == [near]
    assert api.get_memory("f", far) is not None


def test_an_index_behind_a_trimmed_change_log_rebuilds_and_stays_exact(make_api, redis_client):
    """Two engines on one deployment; one stores and moves far more ids than the change log keeps
    while the other's index sleeps: the other sees it fell behind the log and rebuilds, and its
    answers equal a fresh engine's (a deleted memory gone, moved ones found once, in their tier)."""
    options = dict(search_config={"vector_dim": 8, "text_embedding": "off"}, change_log_limit=50,
                   stm_config={"memory_limit": 30}, im_config={"memory_limit": 60}, cleanup_interval=10**6)
    reader, writer = make_api(**options), make_api(**options)
    rng = np.random.default_rng(11)
    rows = lambda start, n: [{"agent_id": "log", "step_number": i, "data": {"position": [i % 17, i // 17]},  # noqa: E731
                              "embedding": rng.standard_normal(8).tolist()} for i in range(start, start + n)]
    first = writer.store_many(rows(0, 20))
    assert len(reader.retrieve_nearest("log", (0, 0), k=100)) == 20  # the reader's index is built
    seen = reader._catalog.known("log").position
    writer.store_many(rows(20, 300))
    writer.force_memory_maintenance("log")
    (oldest_id, oldest), = redis_client.xrange(writer._tiers.keys.changes("log"), count=1)
    assert int(oldest_id.split(b"-")[1]) - int(oldest[b"n"]) > seen  # trimmed past what the reader applied

    def answers(api):
        near = [(m["memory_id"], m["tier"]) for m in api.retrieve_nearest("log", (3, 3), k=40)]
        alike = [m["memory_id"] for m in api.search_by_embedding("log", [1.0] * 8, k=25)]
        return near, alike

    fresh = make_api(**options)
    assert answers(reader) == answers(fresh)
    assert set(first) <= {m["memory_id"] for m in reader.retrieve_by_time_range("log", 0, 20)}
