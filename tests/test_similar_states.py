"""Similar states mean similar values: retrieve_similar_states and query().similar_to rank by a
distance over the query state's leaves (numbers scaled by the spread seen at their path,
categorical values one-hot, a missing leaf as far as a full spread), equal to a brute force
written from that definition, in every tier and across agents."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory import InvalidInputError

AGENT = "walker"
N = 120
GOALS = ("gather", "explore", "build")


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by dot path, written independently of the engine's walker."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: "{}"}
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flat(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        if not value:
            return {prefix: "[]"}
        out = {}
        for index, item in enumerate(value):
            out.update(flat(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same_category(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def brute_force(stored: list[dict[str, Any]], query: dict[str, Any]) -> list[float]:
    """Each stored memory's distance from the query, by the definition."""
    leaves = [flat(m["contents"]) for m in stored]
    wanted = {p: v for p, v in flat(query).items() if not (isinstance(v, float) and math.isnan(v))}
    spreads = {}
    for path in wanted:
        seen = [leaf[path] for leaf in leaves if is_number(leaf.get(path)) and math.isfinite(leaf[path])]
        spreads[path] = (max(seen) - min(seen)) if seen else 0.0
    out = []
    for leaf in leaves:
        total = 0.0
        for path, value in wanted.items():
            held = leaf.get(path, _MISSING)
            if is_number(value):
                if not is_number(held) or (isinstance(held, float) and math.isnan(held)):
                    total += 1.0
                elif spreads[path] > 0:
                    total += ((held - value) / spreads[path]) ** 2
                else:
                    total += 0.0 if held == value else 1.0
            elif held is _MISSING or is_number(held):
                total += 1.0
            else:
                total += 0.0 if same_category(held, value) else 2.0
        out.append(math.sqrt(total))
    return out


_MISSING = object()


def walk(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    x, y, health = 50.0, 50.0, 70.0
    out = []
    for step in range(n):
        x, y = x + rng.normal(0, 4), y + rng.normal(0, 4)
        health = float(np.clip(health + rng.normal(0, 6), 0, 100))
        out.append({"position": [round(x, 2), round(y, 2)], "health": round(health, 1),
                    "inventory": {"wood": int(rng.integers(0, 9)), "food": int(rng.integers(0, 5))},
                    "goal": GOALS[step // 17 % 3], "alert": bool(step % 5 == 0)})
    return out


@pytest.fixture
def spread(make_api: Any) -> Any:
    api = make_api(stm_config={"memory_limit": 20}, im_config={"memory_limit": 40}, cleanup_interval=10**6)
    api.store_many([{"agent_id": AGENT, "step_number": step, "data": state}
                    for step, state in enumerate(walk(N, 5))])
    api.store_agent_action(AGENT, {"action": "move", "health": 12.0}, N, 0.5)  # another kind of memory
    api.force_memory_maintenance(AGENT)
    tiers = api.get_memory_statistics(AGENT)["tiers"]
    assert all(tiers[tier]["count"] for tier in ("stm", "im", "ltm")), tiers
    return api


def check_ranking(answer: list[dict[str, Any]], stored: list[dict[str, Any]], query: dict[str, Any], k: int) -> None:
    """The answer is the k nearest by the definition (ties in any order), best first, and each
    carries its true distance."""
    truth = sorted(brute_force(stored, query))
    assert len(answer) == min(k, len(stored))
    by_id = dict(zip((m["memory_id"] for m in stored), brute_force(stored, query)))
    got = [by_id[m["memory_id"]] for m in answer]
    assert got == pytest.approx(truth[: len(answer)], abs=1e-9)
    for memory in answer:
        assert memory["state_distance"] == pytest.approx(by_id[memory["memory_id"]], abs=1e-9)
        assert memory["similarity_score"] == pytest.approx(1 / (1 + memory["state_distance"]))
        assert 0 < memory["similarity_score"] <= 1


def test_the_nearest_by_normalised_values_over_every_tier(spread):
    stored = list(spread.retrieve_by_time_range(AGENT, 0, N + 1))
    for query in walk(8, 99):
        answer = spread.retrieve_similar_states(AGENT, query, k=10)
        check_ranking(answer, stored, query, 10)


@pytest.mark.parametrize("tier", ["stm", "im", "ltm"])
def test_a_stored_state_ranks_first_in_whichever_tier_holds_it(spread, tier):
    held = list(spread.query(AGENT).in_tiers([tier]).all())
    for memory in held[:: max(1, len(held) // 6)]:
        answer = spread.retrieve_similar_states(AGENT, memory["contents"], k=3)
        assert answer[0]["contents"] == memory["contents"]
        assert answer[0]["state_distance"] == 0.0 and answer[0]["similarity_score"] == 1.0
        in_tier = spread.query(AGENT).in_tiers([tier]).similar_to(memory["contents"]).top(1)
        assert in_tier[0]["memory_id"] == memory["memory_id"]


def test_one_tier_ranks_as_all_tiers_do(spread):
    """A query of one tier scales numbers by the spread over all tiers: its answer is the
    all-tier answer's memories of that tier."""
    query = walk(1, 3)[0]
    everything = spread.retrieve_similar_states(AGENT, query, k=N + 1)
    for tier in ("stm", "im", "ltm"):
        alone = spread.query(AGENT).in_tiers([tier]).similar_to(query).top(5)
        expected = [m["memory_id"] for m in everything if m["tier"] == tier][:5]
        assert [m["memory_id"] for m in alone] == expected


def test_a_partial_state_compares_only_the_paths_it_names(spread):
    stored = list(spread.retrieve_by_time_range(AGENT, 0, N + 1))
    for query in ({"health": 40.0}, {"position": [55, 40]}, {"goal": "build", "inventory": {"wood": 3}},
                  {"alert": True, "health": 12}):
        check_ranking(spread.retrieve_similar_states(AGENT, query, k=7), stored, query, 7)


def test_filters_combine_with_likeness(spread):
    query = {"health": 50.0, "goal": "gather"}
    answer = spread.query(AGENT).between(30, 90).where({"inventory.wood": {"$gte": 4}}).similar_to(query).top(6)
    candidates = [m for m in spread.retrieve_by_time_range(AGENT, 30, 90) if m["contents"]["inventory"]["wood"] >= 4]
    assert answer
    everything = list(spread.retrieve_by_time_range(AGENT, 0, N + 1))
    by_id = dict(zip((m["memory_id"] for m in everything), brute_force(everything, query)))  # spreads over all
    expected = sorted(by_id[m["memory_id"]] for m in candidates)[:6]
    assert [by_id[m["memory_id"]] for m in answer] == pytest.approx(expected, abs=1e-9)


def test_a_type_filter_and_pages(spread):
    query = {"health": 12.0}
    whole = spread.retrieve_similar_states(AGENT, query, k=12, memory_type="state")
    assert all(m["metadata"]["memory_type"] == "state" for m in whole)
    pages = [spread.retrieve_similar_states(AGENT, query, k=4, memory_type="state", offset=o) for o in (0, 4, 8)]
    assert [m["memory_id"] for page in pages for m in page] == [m["memory_id"] for m in whole]
    first = spread.retrieve_similar_states(AGENT, {"action": "move", "health": 12.0}, k=1)
    assert first[0]["metadata"]["memory_type"] == "action"


def test_categories_keep_their_types(make_api):
    api = make_api()
    states = [{"flag": True}, {"flag": 1}, {"flag": "1"}, {"flag": None}, {"flag": []}, {"other": 1}]
    ids = api.store_many([{"agent_id": "typed", "step_number": s, "data": d} for s, d in enumerate(states)])
    for query, wanted in (({"flag": True}, 0), ({"flag": 1}, 1), ({"flag": "1"}, 2), ({"flag": None}, 3),
                          ({"flag": []}, 4)):
        answer = api.retrieve_similar_states("typed", query, k=6)
        assert answer[0]["memory_id"] == ids[wanted], query
        assert answer[0]["state_distance"] == 0.0
        check_ranking(answer, list(api.retrieve_by_time_range("typed", 0, 10)), query, 6)


def test_bad_query_states_are_refused_and_change_nothing(api):
    api.store_agent_state("a", {"health": 3}, 1, 0.5)
    for bad in (None, [1, 2], "health", {}, {"x": {1, 2}}, {"x": object()}):
        with pytest.raises(InvalidInputError):
            api.retrieve_similar_states("a", bad)
        with pytest.raises(InvalidInputError):
            api.query("a").similar_to(bad)
    assert [m["contents"] for m in api.retrieve_similar_states("a", {"health": 4})] == [{"health": 3}]


def test_only_indexed_paths_are_compared(make_api):
    api = make_api(search_config={"attribute_paths": ["health"]})
    api.store_many([{"agent_id": "a", "step_number": s, "data": {"health": s, "mood": "calm" if s % 2 else "sad"}}
                    for s in range(10)])
    answer = api.retrieve_similar_states("a", {"health": 4, "mood": "calm"}, k=1)
    assert answer[0]["contents"]["health"] == 4  # mood is not indexed: not compared
    with pytest.raises(InvalidInputError, match="attribute_paths"):
        api.retrieve_similar_states("a", {"mood": "calm"})


def test_across_agents(make_api):
    api = make_api(stm_config={"memory_limit": 10}, im_config={"memory_limit": 20}, cleanup_interval=10**6)
    for agent, seed in (("a", 1), ("b", 2), ("c", 3)):
        api.store_many([{"agent_id": agent, "step_number": s, "data": d} for s, d in enumerate(walk(40, seed))])
    api.force_memory_maintenance()
    stored = [m for agent in ("a", "b", "c") for m in api.retrieve_by_time_range(agent, 0, 40)]
    query = walk(1, 11)[0]
    answer = api.query_agents(["a", "b", "c"]).similar_to(query).top(9)
    check_ranking(answer, stored, query, 9)
    assert len({m["agent_id"] for m in api.query_agents(["a", "b", "c"]).similar_to(query).top(60)}) == 3


def test_rank_by_relevance_to_a_state(spread):
    query = {"health": 30.0, "goal": "explore"}
    answer = spread.query(AGENT).similar_to(query).rank_by(relevance=1.0).top(5)
    plain = spread.retrieve_similar_states(AGENT, query, k=5)
    assert [m["memory_id"] for m in answer] == [m["memory_id"] for m in plain]
    assert all("rank_score" in m and "similarity_score" in m for m in answer)


def test_answers_follow_writes(api):
    api.store_agent_state("a", {"health": 10}, 1, 0.5)
    assert api.retrieve_similar_states("a", {"health": 50})[0]["contents"] == {"health": 10}
    api.store_agent_state("a", {"health": 49}, 2, 0.5)
    assert api.retrieve_similar_states("a", {"health": 50})[0]["contents"] == {"health": 49}


leaf = st.one_of(st.integers(-50, 50), st.floats(-1e3, 1e3, allow_nan=False), st.booleans(), st.none(),
                 st.sampled_from(["red", "blue", ""]))
states = st.dictionaries(st.sampled_from(["a", "b", "c"]),
                         st.one_of(leaf, st.lists(leaf, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), leaf,
                                                                                     max_size=2)),
                         min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.lists(states, min_size=1, max_size=25), query=states)
def test_any_contents_rank_as_the_definition_says(make_api, stored, query):
    api = make_api(stm_config={"memory_limit": 6}, im_config={"memory_limit": 8}, cleanup_interval=10**6)
    agent = f"p{abs(hash((repr(stored), repr(query)))) % 10**9}"
    api.store_many([{"agent_id": agent, "step_number": s, "data": d} for s, d in enumerate(stored)])
    api.force_memory_maintenance(agent)
    memories = list(api.retrieve_by_time_range(agent, 0, len(stored)))
    try:
        answer = api.retrieve_similar_states(agent, query, k=len(stored))
    except InvalidInputError:
        assert not flat(query)  # only a query with no leaf at all is refused
        return
    check_ranking(answer, memories, query, len(stored))
