"""Deleting memories: ``delete_memory`` / ``delete_memories`` take a memory out of whichever tier
holds it, with every index entry, so no query of any kind (nor a second engine, through the change
log) finds it again; a maintenance move under way in another thread never writes it back; bad
input is refused before anything is deleted. ``exclusive`` blocks hold an agent's lease, nest in
one thread, and leave the maintenance their stores made due for when they end."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import numpy as np
import pytest

from memory import AgentMemoryAPI, MemoryConfig
from tiers.errors import InvalidInputError, MemoryAPIException, MemoryStoreException

AGENT = "deleter"
LIMITS = {
    "cleanup_interval": 1_000_000,  # maintenance only when the test forces it
    "stm_config": {"memory_limit": 10},
    "im_config": {"memory_limit": 10},
    "search_config": {"vector_dim": 8, "text_embedding": "off"},
}


def vector(i: int) -> list[float]:
    return np.random.default_rng(i).normal(size=8).tolist()


def fill(api: AgentMemoryAPI, agent: str = AGENT, count: int = 40) -> dict[str, int]:
    """``count`` memories spread over the three tiers: memory_id -> i."""
    ids = {}
    for i in range(count):
        data = {"n": i, "kind": "even" if i % 2 == 0 else "odd", "position": [i, 0]}
        ids[api.store_agent_state(agent, data, step_number=i, embedding=vector(i))] = i
    api.force_memory_maintenance(agent)
    return ids


def tiers_of(api: AgentMemoryAPI, agent: str = AGENT) -> dict[str, str]:
    return {m["memory_id"]: m["tier"] for m in api.retrieve_by_time_range(agent, 0, 10**6)}


def everything_finds(api: AgentMemoryAPI, agent: str = AGENT) -> dict[str, set[str]]:
    """The ids each kind of query finds among the agent's memories."""
    def ids(found: Any) -> set[str]:
        return {m["memory_id"] for m in found}

    return {
        "range": ids(api.retrieve_by_time_range(agent, 0, 10**6)),
        "recent": ids(api.retrieve_recent(agent, 1000)),
        "important": ids(api.retrieve_most_important(agent, 1000)),
        "attributes": ids(api.retrieve_by_attributes(agent, {"n": {"$gte": 0}})),
        "location": ids(api.retrieve_by_location(agent, (20, 0), radius=100)),
        "embedding": ids(api.search_by_embedding(agent, vector(3), k=1000)),
        "combined": ids(api.query(agent).where({"kind": {"$in": ["even", "odd"]}}).all()),
    }


def test_a_deleted_memory_leaves_its_tier_and_every_query_in_this_engine_and_another(make_api):
    api = make_api(**LIMITS)
    stored = fill(api)
    placed = tiers_of(api)
    chosen = {tier: next(m for m, t in placed.items() if t == tier) for tier in ("stm", "im", "ltm")}
    counts = {tier: api.get_memory_statistics(AGENT)["tiers"][tier]["count"] for tier in ("stm", "im", "ltm")}
    assert all(counts.values())
    other = make_api(**LIMITS)
    assert everything_finds(other) == everything_finds(api)  # its indices are built before the deletes

    for tier, memory_id in chosen.items():
        assert api.delete_memory(AGENT, memory_id) is True, tier
        assert api.delete_memory(AGENT, memory_id) is False, tier  # none holds it any more
    left = set(stored) - set(chosen.values())
    for engine in (api, other):
        assert everything_finds(engine) == {kind: left for kind in everything_finds(engine)}
        for memory_id in chosen.values():
            assert engine.get_memory(AGENT, memory_id) is None
        statistics = engine.get_memory_statistics(AGENT)["tiers"]
        assert {tier: statistics[tier]["count"] for tier in counts} == {tier: n - 1 for tier, n in counts.items()}
    api.force_memory_maintenance(AGENT)
    assert set(tiers_of(api)) == left  # maintenance brings none back
    assert api.delete_memories(AGENT, list(stored)) == len(left)
    assert api.list_agents() == [] and everything_finds(other) == {kind: set() for kind in everything_finds(other)}


def test_a_delete_drops_the_reads_maintenance_would_otherwise_flush_for_ever(make_api, redis_client):
    api = make_api(**LIMITS)
    stored = fill(api)
    in_ltm = next(m for m, t in tiers_of(api).items() if t == "ltm")
    api.get_memory(AGENT, in_ltm)  # a focused read, counted in Redis until maintenance flushes it
    reads = api._tiers.keys.ltm_reads(AGENT)
    assert redis_client.hexists(reads, in_ltm)
    assert api.delete_memory(AGENT, in_ltm)
    assert not redis_client.hexists(reads, in_ltm)
    assert api.force_memory_maintenance(AGENT).reads_flushed == 0
    assert len(api.retrieve_by_time_range(AGENT, 0, 10**6)) == len(stored) - 1


def test_delete_memories_counts_what_it_found_and_refuses_bad_input_before_deleting(make_api):
    api = make_api(**LIMITS)
    ids = [api.store_agent_state(AGENT, {"n": i}, step_number=i) for i in range(5)]
    assert api.delete_memories(AGENT, []) == 0
    assert api.delete_memories("nobody", ids) == 0
    for bad, what in [("bad id!", "agent_id"), ("", "agent_id"), (7, "agent_id")]:
        with pytest.raises(InvalidInputError, match=what):
            api.delete_memory(bad, ids[0])
    for bad in [ids[0], b"raw", {"id": ids[0]}, 5]:
        with pytest.raises(InvalidInputError, match="memory_ids"):
            api.delete_memories(AGENT, bad)
    for bad in [[ids[0], 5], [ids[0], ""], [ids[0], "x" * 300], [ids[0], "nul\x00"]]:
        with pytest.raises(InvalidInputError, match="memory_id"):
            api.delete_memories(AGENT, bad)
    with pytest.raises(InvalidInputError, match="at most"):
        api.delete_memories(AGENT, [f"m{i}" for i in range(10_001)])
    assert len(api.retrieve_by_time_range(AGENT, 0, 10)) == 5  # nothing was deleted
    assert api.delete_memories(AGENT, [ids[0], ids[0], ids[1], "never-stored"]) == 2
    api.close()
    with pytest.raises(MemoryAPIException, match="closed"):
        api.delete_memory(AGENT, ids[2])


def test_a_delete_waits_for_another_holder_and_is_refused_typed_if_it_never_ends(make_api, redis_client):
    api = make_api(**LIMITS, maintenance_lock_timeout=0.2)
    memory_id = api.store_agent_state(AGENT, {"kept": True}, 1)
    redis_client.set(api._tiers.keys.lock(AGENT), "another-process", px=60_000)
    with pytest.raises(MemoryStoreException, match="being maintained"):
        api.delete_memory(AGENT, memory_id)
    assert api.get_memory(AGENT, memory_id)["contents"] == {"kept": True}
    redis_client.delete(api._tiers.keys.lock(AGENT))
    assert api.delete_memory(AGENT, memory_id)


class Pause:
    """Wraps a real tier method so that the thread calling it stops there until released."""

    def __init__(self, method: Any):
        self.method, self.reached, self.go = method, threading.Event(), threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.reached.set()
        assert self.go.wait(30)
        return self.method(*args, **kwargs)


@pytest.mark.parametrize("move", ["stm>im", "im>ltm", "ltm>im"])
def test_a_move_under_way_never_brings_a_deleted_memory_back(make_api, monkeypatch, move):
    """The move has read the memory from its source and is about to write it to its destination
    when the delete comes: the delete waits for the move's lease, then takes it out of the tier it
    was moved to."""
    api = make_api(**LIMITS)
    stored = fill(api)
    tiers = api._tiers
    if move == "stm>im":
        for i in range(40, 45):  # over STM's limit again: the next maintenance demotes these
            stored[api.store_agent_state(AGENT, {"n": i}, step_number=i)] = i
        victim, destination, point = min(m for m, t in tiers_of(api).items() if t == "stm"), "im", (tiers.im, "move_in")
    elif move == "im>ltm":
        for i in range(40, 52):  # STM's excess moves into IM, which then has an excess of its own
            stored[api.store_agent_state(AGENT, {"n": i}, step_number=i)] = i
        victim = min(m for m, t in tiers_of(api).items() if t == "im")
        destination, point = "ltm", (tiers.ltm, "put_many")
    else:
        victim = next(m for m, t in tiers_of(api).items() if t == "ltm")
        for _ in range(api.config.ltm_config.promote_threshold):
            api.get_memory(AGENT, victim)  # read often enough to come back to IM
        destination, point = "im", (tiers.im, "put_many")
    pause = Pause(getattr(*point))
    monkeypatch.setattr(*point, pause)
    maintaining = threading.Thread(target=api.force_memory_maintenance, args=(AGENT,))
    maintaining.start()
    assert pause.reached.wait(30)
    outcome: list[bool] = []
    deleting = threading.Thread(target=lambda: outcome.append(api.delete_memory(AGENT, victim)))
    deleting.start()
    time.sleep(0.3)
    assert deleting.is_alive() and outcome == []  # waiting for the move's lease
    pause.go.set()
    maintaining.join(30)
    deleting.join(30)
    assert outcome == [True]
    monkeypatch.undo()
    placed = tiers_of(api)
    assert victim not in placed and set(placed) == set(stored) - {victim}
    assert destination in set(placed.values()) or move == "ltm>im"
    api.force_memory_maintenance(AGENT)
    assert victim not in tiers_of(api) and api.get_memory(AGENT, victim) is None


def test_exclusive_blocks_nest_exclude_other_threads_and_maintain_when_they_end(make_api):
    api = make_api(cleanup_interval=5, stm_config={"memory_limit": 3}, im_config={"memory_limit": 100})
    entered: list[float] = []

    def contender() -> None:
        with api.exclusive(AGENT):
            entered.append(time.monotonic())

    with api.exclusive(AGENT):
        with api.exclusive(AGENT):  # nested in one thread: the lease held serves
            ids = [api.store_agent_state(AGENT, {"n": i}, step_number=i) for i in range(6)]
            assert api.delete_memory(AGENT, ids[0])
        other = threading.Thread(target=contender)
        other.start()
        time.sleep(0.2)
        assert entered == []  # another thread waits for the block
        assert api.get_memory_statistics(AGENT)["tiers"]["stm"]["count"] == 5  # no maintenance inside
        left = time.monotonic()
    other.join(10)
    assert entered and entered[0] >= left
    assert api.get_memory_statistics(AGENT)["tiers"]["stm"]["count"] <= 3  # due, run when the block ended
    with pytest.raises(ZeroDivisionError):
        with api.exclusive(AGENT):
            raise ZeroDivisionError  # the block's own error, as it was
    with api.exclusive(AGENT):  # and the lease was given back
        pass
    with pytest.raises(InvalidInputError, match="agent_id"):
        with api.exclusive("no spaces allowed"):
            pass


def test_deletes_on_a_redis_cluster_reach_agents_on_every_primary(local_cluster, tmp_path):
    prefix = f"tdl{uuid.uuid4().hex[:10]}"
    agents = [f"agent-{i}" for i in range(12)]
    config = MemoryConfig(redis_url=local_cluster, key_prefix=prefix, data_dir=str(tmp_path / "data"), **LIMITS)
    with AgentMemoryAPI(config) as api:
        try:
            kept = {agent: fill(api, agent, 25) for agent in agents}
            for agent, ids in kept.items():
                gone = [m for m, i in ids.items() if i % 3 == 0]
                assert api.delete_memories(agent, gone) == len(gone)
                assert set(tiers_of(api, agent)) == set(ids) - set(gone)
                assert everything_finds(api, agent)["combined"] == set(ids) - set(gone)
        finally:
            for agent in agents:
                api.clear_agent_memory(agent)
