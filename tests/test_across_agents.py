"""Queries across agents (api.query_agents): one answer merged from each agent's own indices,
equal to the one-agent answers put together, never short, current with every process's writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memory import InvalidInputError

AGENTS = [f"trader-{i}" for i in range(5)]
DIM = 16


def memories_of(agent: str, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for step in range(40):
        kind = "action" if step % 2 else "state"
        data = {"outcome": "success" if rng.random() < 0.3 else "failure", "reward": int(rng.integers(0, 10))}
        out.append({"agent_id": agent, "step_number": step, "memory_type": kind, "data": data,
                    "priority": float(rng.uniform(0.05, 1.0)), "embedding": rng.standard_normal(DIM).tolist()})
    return out


@pytest.fixture
def town(make_api: Any) -> Any:
    api = make_api(stm_config={"memory_limit": 8}, im_config={"memory_limit": 12}, cleanup_interval=10**6,
                   search_config={"vector_dim": DIM, "state_vectors": False})
    for seed, agent in enumerate(AGENTS):
        api.store_many(memories_of(agent, seed))
        api.force_memory_maintenance(agent)
    return api


def key(memory: dict[str, Any]) -> tuple[int, str]:
    return memory["step_number"], memory["memory_id"]


def test_which_trades_succeeded_across_agents_is_every_agent_answer_merged(town):
    wanted = {"outcome": "success"}
    expected = sorted((m for agent in AGENTS for m in town.retrieve_by_attributes(agent, wanted, memory_type="action")),
                      key=key)
    answer = town.query_agents(AGENTS).of_type("action").where(wanted).all()
    assert [key(m) for m in answer] == [key(m) for m in expected] and len(answer) > 10
    assert {m["tier"] for m in answer} == {"stm", "im", "ltm"}
    everyone = town.query_agents().of_type("action").where(wanted).all()  # every agent of the key prefix
    assert [key(m) for m in everyone] == [key(m) for m in expected]
    top = town.query_agents(AGENTS[:3]).where({"reward": {"$gte": 7}}).between(5, 30).top(6, offset=2)
    rows = sorted((m for agent in AGENTS[:3] for m in town.query(agent).where({"reward": {"$gte": 7}}).between(5, 30)
                   .all()), key=key)
    assert [key(m) for m in top] == [key(m) for m in rows][2:8]


def test_similar_across_agents_is_the_best_of_every_agent(town):
    query = np.random.default_rng(11).standard_normal(DIM)
    per_agent = [m for agent in AGENTS for m in town.search_by_embedding(agent, query, k=5)]
    best = sorted(per_agent, key=lambda m: (-m["similarity_score"], m["memory_id"]))[:5]
    answer = town.query_agents(AGENTS).similar_to_embedding(query).top(5)
    assert [m["memory_id"] for m in answer] == [m["memory_id"] for m in best]
    ranked = town.query_agents(AGENTS).similar_to_embedding(query).rank_by("generative_agents").top(4)
    assert len(ranked) == 4 and {m["agent_id"] for m in ranked} <= set(AGENTS)


def test_a_write_from_another_process_is_in_the_next_answer(town, make_api):
    other = make_api(stm_config={"memory_limit": 8}, im_config={"memory_limit": 12}, cleanup_interval=10**6,
                     search_config={"vector_dim": DIM, "state_vectors": False})
    before = town.query_agents(AGENTS).where({"outcome": "jackpot"}).all()
    assert before == []
    other.store_agent_action(AGENTS[3], {"outcome": "jackpot"}, 99)
    after = town.query_agents(AGENTS).where({"outcome": "jackpot"}).all()
    assert [(m["agent_id"], m["step_number"]) for m in after] == [(AGENTS[3], 99)]


@pytest.mark.parametrize("agent_ids", ["trader-0", [], [""], ["ok", 3], 5])
def test_bad_agent_lists_are_refused(town, agent_ids):
    with pytest.raises(InvalidInputError):
        town.query_agents(agent_ids).all()
