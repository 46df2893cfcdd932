"""The Agent Memory API document's examples, run as written (same calls, keywords and values).

Each test asserts what the document says the example does. Where the document builds an engine
with ``AgentMemoryAPI()`` the ``make_api`` fixture stands in for it: the same engine, on the
test's Redis engine (real and embedded). The raw vector example's ``[0.1, 0.2, 0.3, ...]``
becomes a vector of the configured size.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

import memory.hooks
from memory.api import (
    ActionData,
    ActionResult,
    AgentMemoryAPI,
    AgentState,
    BaseAgent,
    MemoryAPIException,
    MemoryRetrievalException,
    MemoryStoreException,
    cacheable,
    install_memory_hooks,
    with_memory,
)
from memory.config import MemoryConfig, RedisSTMConfig
from support import cut_off_redis

STATE = {"position": [10, 20], "health": 0.85, "inventory": {"wood": 5, "stone": 2}}
INTERACTION = {
    "interaction_type": "conversation",
    "other_agent_id": "agent-456",
    "content": "Hello, do you have any wood to trade?",
    "sentiment": 0.6,
}
TRADE = {
    "action_type": "trade",
    "target_agent": "agent-456",
    "items_given": {"wood": 2},
    "items_received": {"stone": 1},
    "outcome": "success",
}


def store_seed_memories(memory_api):
    """The "Storing Agent Information" example, verbatim."""
    memory_api.store_agent_state(
        agent_id="agent-123",
        state_data={
            "position": [10, 20],
            "health": 0.85,
            "inventory": {"wood": 5, "stone": 2},
        },
        step_number=1234,
        priority=0.75,  # Important memory (0.0-1.0)
    )
    memory_api.store_agent_interaction(
        agent_id="agent-123",
        interaction_data={
            "interaction_type": "conversation",
            "other_agent_id": "agent-456",
            "content": "Hello, do you have any wood to trade?",
            "sentiment": 0.6,
        },
        step_number=1235,
    )
    memory_api.store_agent_action(
        agent_id="agent-123",
        action_data={
            "action_type": "trade",
            "target_agent": "agent-456",
            "items_given": {"wood": 2},
            "items_received": {"stone": 1},
            "outcome": "success",
        },
        step_number=1236,
    )


def summary(memories):
    return [(m["step_number"], m["metadata"]["memory_type"], m["contents"]) for m in memories]


# -- Initialization ------------------------------------------------------------------------------
def test_initialization_with_custom_config(make_api):
    memory_api = make_api(cleanup_interval=100, stm_config={"memory_limit": 10000})

    assert memory_api.config.cleanup_interval == 100
    assert isinstance(memory_api.config.stm_config, RedisSTMConfig)
    assert memory_api.config.stm_config.memory_limit == 10000
    store_seed_memories(memory_api)
    assert len(memory_api.retrieve_by_time_range("agent-123", 1234, 1236)) == 3


def test_a_bare_engine_runs_embedded_and_keeps_its_memories(tmp_path):
    data_dir = str(tmp_path / "data")
    memory_api = AgentMemoryAPI(MemoryConfig(data_dir=data_dir, redis_url=""))
    try:
        assert memory_api.mode == "embedded"
        store_seed_memories(memory_api)
        assert [m["step_number"] for m in memory_api.retrieve_by_time_range("agent-123", 1000, 2000)] == [
            1234,
            1235,
            1236,
        ]
    finally:
        memory_api.close()

    with AgentMemoryAPI(MemoryConfig(data_dir=data_dir, redis_url="")) as reopened:
        assert summary(reopened.retrieve_by_time_range("agent-123", 1000, 2000)) == [
            (1234, "state", STATE),
            (1235, "interaction", INTERACTION),
            (1236, "action", TRADE),
        ]


# -- Storing Agent Information -------------------------------------------------------------------
def test_storing_a_state_an_interaction_and_an_action(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)

    memories = memory_api.retrieve_by_time_range(agent_id="agent-123", start_step=1000, end_step=2000)

    assert summary(memories) == [
        (1234, "state", STATE),
        (1235, "interaction", INTERACTION),
        (1236, "action", TRADE),
    ]
    assert [m["metadata"]["importance_score"] for m in memories] == [0.75, 1.0, 1.0]
    assert {m["agent_id"] for m in memories} == {"agent-123"}


# -- Using Structured Models ---------------------------------------------------------------------
def test_structured_models_store_through_as_dict(make_api):
    memory_api = make_api()
    agent_state = AgentState(
        agent_id="agent-123",
        step_number=1234,
        health=0.85,
        position_x=10,
        position_y=20,
        extra_data={"inventory": {"wood": 5, "stone": 2}},
    )

    state_dict = agent_state.as_dict()
    memory_api.store_agent_state(
        agent_id=agent_state.agent_id,
        state_data=state_dict,
        step_number=agent_state.step_number,
    )
    result = ActionResult(
        action_type="trade",
        params={"target": "agent-456", "item": "wood"},
        reward=0.5,
    )

    assert state_dict == {
        "agent_id": "agent-123",
        "step_number": 1234,
        "health": 0.85,
        "position_x": 10,
        "position_y": 20,
        "inventory": {"wood": 5, "stone": 2},
    }
    (stored,) = memory_api.retrieve_by_attributes("agent-123", {"inventory.wood": 5}, memory_type="state")
    assert stored["step_number"] == 1234 and stored["contents"] == state_dict
    assert result.as_dict() == {
        "action_type": "trade",
        "params": {"target": "agent-456", "item": "wood"},
        "reward": 0.5,
    }
    action = ActionData(action_type="trade", step_number=1236, params=result.params, reward=result.reward)
    assert action.as_dict() == {
        "action_type": "trade",
        "step_number": 1236,
        "params": {"target": "agent-456", "item": "wood"},
        "reward": 0.5,
    }


# -- Retrieving Memories -------------------------------------------------------------------------
def test_memory_space_returns_the_recent_states_newest_first(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)
    for step in range(1237, 1244):
        memory_api.store_agent_state("agent-123", {"position": [10, step - 1217], "health": 0.8}, step)

    memory_space = memory_api.get_memory_space("agent-123")
    recent_states = memory_space.retrieve_recent_states(
        count=5,
        memory_type="state",  # Optional filter
    )

    assert [m["step_number"] for m in recent_states] == [1243, 1242, 1241, 1240, 1239]
    assert {m["metadata"]["memory_type"] for m in recent_states} == {"state"}


def test_the_stored_state_comes_back_as_a_recent_state(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)

    recent_states = memory_api.get_memory_space("agent-123").retrieve_recent_states(count=5, memory_type="state")

    assert summary(recent_states) == [(1234, "state", STATE)]


def test_time_range_with_a_type_filter(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)
    memory_api.store_agent_action("agent-123", {"action_type": "rest"}, step_number=2001)

    memories = memory_api.retrieve_by_time_range(
        agent_id="agent-123",
        start_step=1000,
        end_step=2000,
        memory_type="action",  # Optional filter
    )

    assert summary(memories) == [(1236, "action", TRADE)]


def test_attribute_query_finds_the_successful_trade(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)
    memory_api.store_agent_action("agent-123", {**TRADE, "outcome": "failure"}, step_number=1237)
    memory_api.store_agent_state("agent-123", {"action_type": "trade", "outcome": "success"}, step_number=1238)

    trading_memories = memory_api.retrieve_by_attributes(
        agent_id="agent-123",
        attributes={"action_type": "trade", "outcome": "success"},
        memory_type="action",
    )

    assert summary(trading_memories) == [(1236, "action", TRADE)]


def test_memory_space_time_range_merges_every_tier_in_step_order(make_api):
    memory_api = make_api(stm_config={"memory_limit": 5}, im_config={"memory_limit": 5})
    steps = list(range(900, 2101, 40))
    for step in steps:
        memory_api.store_agent_state("agent-123", {"step": step}, step_number=step)
    memory_api.force_memory_maintenance(agent_id="agent-123")
    memory_space = memory_api.get_memory_space("agent-123")

    memories = memory_space.retrieve_by_time_range(
        agent_id="agent-123",
        start_step=1000,
        end_step=2000,
    )

    assert [m["step_number"] for m in memories] == [s for s in steps if 1000 <= s <= 2000]
    assert [m["contents"]["step"] for m in memories] == [m["step_number"] for m in memories]
    assert {m["tier"] for m in memories} == {"stm", "im", "ltm"}


# -- Memory Management ---------------------------------------------------------------------------
def test_forced_maintenance_moves_memories_down_a_tier(make_api):
    memory_api = make_api(stm_config={"memory_limit": 2})
    store_seed_memories(memory_api)

    report = memory_api.force_memory_maintenance(agent_id="agent-123")

    assert report.agents == 1 and report.stm_to_im == 1
    tiers = memory_api.get_memory_statistics(agent_id="agent-123")["tiers"]
    assert (tiers["stm"]["count"], tiers["im"]["count"], tiers["ltm"]["count"]) == (2, 1, 0)
    assert len(memory_api.retrieve_by_time_range("agent-123", 1000, 2000)) == 3


def test_memory_statistics(make_api, capsys):
    memory_api = make_api()
    store_seed_memories(memory_api)

    stats = memory_api.get_memory_statistics(agent_id="agent-123")
    print(f"Total memories: {stats['total_memories']}")
    print(f"Memory distribution: {stats['memory_type_distribution']}")

    assert stats["total_memories"] == 3
    assert stats["memory_type_distribution"] == {"state": 1, "interaction": 1, "action": 1}
    assert "Total memories: 3" in capsys.readouterr().out


def test_clear_cache_makes_the_next_query_compute_afresh(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)
    memory_api.retrieve_by_time_range("agent-123", 1000, 2000)
    memory_api.retrieve_by_time_range("agent-123", 1000, 2000)
    assert memory_api.get_memory_statistics("agent-123")["cache"]["hits"] == 1

    memory_api.clear_cache()

    cache = memory_api.get_memory_statistics("agent-123")["cache"]
    assert cache["size"] == 0
    memory_api.retrieve_by_time_range("agent-123", 1000, 2000)
    after = memory_api.get_memory_statistics("agent-123")["cache"]
    assert (after["hits"], after["misses"]) == (cache["hits"], cache["misses"] + 1)


def test_set_cache_ttl(make_api):
    memory_api = make_api()

    memory_api.set_cache_ttl(300)  # 5 minutes

    assert memory_api.get_memory_statistics("agent-123")["cache"]["ttl"] == 300


def test_memory_space_cache_controls(make_api):
    memory_api = make_api()
    store_seed_memories(memory_api)
    memory_space = memory_api.get_memory_space("agent-123")
    memory_space.retrieve_recent_states(count=5)

    memory_space.set_cache_ttl(300)  # 5 minutes
    memory_space.retrieve_recent_states(count=5)
    memory_space.clear_cache()

    cache = memory_api.get_memory_statistics("agent-123")["cache"]
    assert cache["ttl"] == 300 and cache["size"] == 0


# -- Memory Structure ----------------------------------------------------------------------------
def test_a_memory_has_the_documented_structure(make_api, clock):
    clock.now = 1679233344.0
    memory_api = make_api(clock=clock)
    memory_id = memory_api.store_agent_state("agent-123", STATE, step_number=1234, priority=0.75)
    clock.advance(56)
    for _ in range(3):
        memory = memory_api.get_memory("agent-123", memory_id)

    assert memory["memory_id"] == memory_id and memory_id.startswith("agent-123-")
    assert memory["agent_id"] == "agent-123"
    assert memory["step_number"] == 1234
    assert memory["timestamp"] == 1679233344
    assert memory["contents"] == STATE
    assert memory["metadata"].items() >= {
        "creation_time": 1679233344,
        "last_access_time": 1679233400,
        "compression_level": 0,
        "importance_score": 0.75,
        "retrieval_count": 3,
        "memory_type": "state",
    }.items()
    assert set(memory["embeddings"]) == {"full_vector", "compressed_vector", "abstract_vector"}


# -- Error Handling ------------------------------------------------------------------------------
def test_exception_hierarchy():
    from memory.api import MemoryConfigException, MemoryMaintenanceException

    for exc in (MemoryStoreException, MemoryRetrievalException, MemoryMaintenanceException, MemoryConfigException):
        assert issubclass(exc, MemoryAPIException)


def test_error_handling_example_succeeds_on_a_healthy_engine(make_api, capsys):
    memory_api = make_api()

    try:
        memory_api.store_agent_state(
            agent_id="agent-123",
            state_data={"position": [10, 20], "health": 0.8},
            step_number=42,
        )
    except MemoryStoreException as e:
        print(f"Storage failed: {e}")

    assert capsys.readouterr().out == ""
    assert summary(memory_api.retrieve_by_time_range("agent-123", 42, 42)) == [
        (42, "state", {"position": [10, 20], "health": 0.8})
    ]


def test_a_failed_redis_write_is_a_memory_store_exception(make_api, redis_client, monkeypatch, capsys):
    memory_api = make_api()
    memory_api.store_agent_state("agent-123", {"health": 1.0}, step_number=41)
    cut_off_redis(monkeypatch, redis_client)

    try:
        memory_api.store_agent_state(
            agent_id="agent-123",
            state_data={"position": [10, 20], "health": 0.8},
            step_number=42,
        )
    except MemoryStoreException as e:
        print(f"Storage failed: {e}")

    assert "Storage failed:" in capsys.readouterr().out
    monkeypatch.undo()
    assert [m["step_number"] for m in memory_api.retrieve_by_time_range("agent-123", 0, 100)] == [41]


def test_invalid_input_is_refused_as_a_memory_store_exception(make_api):
    memory_api = make_api()

    with pytest.raises(MemoryStoreException, match="step_number"):
        memory_api.store_agent_state(agent_id="agent-123", state_data={"health": 0.8}, step_number=-1)


def test_a_failed_redis_read_is_a_memory_retrieval_exception(make_api, redis_client, monkeypatch):
    memory_api = make_api()
    store_seed_memories(memory_api)
    cut_off_redis(monkeypatch, redis_client)

    with pytest.raises(MemoryRetrievalException, match="injected"):
        memory_api.retrieve_by_time_range(agent_id="agent-123", start_step=1000, end_step=2000)


# -- Configuration Options -----------------------------------------------------------------------
@pytest.fixture
def local_redis():
    """The Redis the configuration example names: localhost:6379, database 0."""
    client = redis.Redis(host="localhost", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("TIERMEM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at localhost:6379 is not reachable: {exc}")
        pytest.skip(f"Redis at localhost:6379 is not reachable: {exc}")
    yield client
    client.close()


def test_configuration_example_uses_the_named_redis(local_redis, tmp_path):
    key_prefix = f"t{uuid.uuid4().hex[:12]}"
    config = MemoryConfig(
        # System-wide settings
        cleanup_interval=100,  # Check for maintenance every N insertions
        memory_priority_decay=0.95,  # Priority decay factor for older memories
        # Tier-specific settings
        stm_config=RedisSTMConfig(
            host="localhost",
            port=6379,
            memory_limit=10000,  # Max entries in STM
            ttl=3600,  # 1 hour TTL
        ),
        key_prefix=key_prefix,
        data_dir=str(tmp_path / "data"),
    )
    try:
        memory_api = AgentMemoryAPI(config)
        with memory_api:
            assert memory_api.mode == "redis"
            assert (config.stm_config.memory_limit, config.stm_config.ttl) == (10000, 3600)
            store_seed_memories(memory_api)
            assert len(memory_api.retrieve_by_time_range("agent-123", 1000, 2000)) == 3
        assert list(local_redis.scan_iter(match=f"{key_prefix}:*")), "the memories went to localhost:6379"
    finally:
        keys = list(local_redis.scan_iter(match=f"{key_prefix}:*", count=1000))
        if keys:
            local_redis.delete(*keys)


# -- Caching Expensive Operations ----------------------------------------------------------------
def test_cacheable_example():
    computed = []

    @cacheable(ttl=60)
    def expensive_memory_operation(agent_id, query):
        computed.append((agent_id, query))
        results = [f"{agent_id}: {query} #{len(computed)}"]
        return results

    result1 = expensive_memory_operation("agent-123", "find wood")
    result2 = expensive_memory_operation("agent-123", "find wood")  # Uses cache
    result3 = expensive_memory_operation("agent-123", "find stone")  # New computation

    assert result1 == result2 == ["agent-123: find wood #1"]
    assert result3 == ["agent-123: find stone #2"]
    assert computed == [("agent-123", "find wood"), ("agent-123", "find stone")]


def test_cacheable_recomputes_after_the_ttl(clock):
    computed = []

    @cacheable(ttl=60, timer=clock)
    def expensive_memory_operation(agent_id, query):
        computed.append(query)
        return len(computed)

    assert expensive_memory_operation("agent-123", "find wood") == 1
    clock.advance(59)
    assert expensive_memory_operation("agent-123", "find wood") == 1
    clock.advance(2)
    assert expensive_memory_operation("agent-123", "find wood") == 2


# -- Memory Hooks --------------------------------------------------------------------------------
@install_memory_hooks
class MyAgent(BaseAgent):
    def __init__(self, config=None, agent_id=None):
        super().__init__(config, agent_id)
        # Agent-specific initialization
        self.some_internal_state = "idle"

    def act(self, observation):
        # Memory hooks automatically capture state before and after this method
        result = self.process(observation)
        return result

    def process(self, observation):
        self.some_internal_state = f"saw {observation['item']}"
        return {"action_type": "gather", "item": observation["item"]}

    def get_state(self):
        state = super().get_state()
        state.extra_data["custom_field"] = self.some_internal_state
        return state


def test_class_decorator_records_states_and_the_action(make_api):
    memory_api = make_api()
    agent = MyAgent(config={"memory_api": memory_api}, agent_id="agent-123")

    result = agent.act({"item": "wood"})

    assert result == {"action_type": "gather", "item": "wood"}
    memories = memory_api.retrieve_by_time_range("agent-123", 0, 10)
    assert [(m["step_number"], m["metadata"]["memory_type"]) for m in memories] == [
        (0, "state"),
        (0, "action"),
        (1, "state"),
    ]
    before, action, after = (m["contents"] for m in memories)
    assert before == {"agent_id": "agent-123", "step_number": 0, "custom_field": "idle"}
    assert after == {"agent_id": "agent-123", "step_number": 1, "custom_field": "saw wood"}
    assert action["action_type"] == "gather"
    assert action["state_changes"]["custom_field"] == {"before": "idle", "after": "saw wood"}


class ExistingAgentClass:
    def __init__(self):
        self.topic = None

    def act(self, observation):
        self.topic = observation["user_input"]
        return {"action_type": "answer", "text": "Sunny."}


def test_instance_decorator_on_an_existing_agent(make_api, monkeypatch):
    memory_api = make_api()
    monkeypatch.setattr(memory.hooks, "_default_api", memory_api)

    agent = ExistingAgentClass()
    memory_enhanced_agent = with_memory(agent, agent_id="agent-456")
    result = memory_enhanced_agent.act({"user_input": "What's the weather today?"})

    assert result == {"action_type": "answer", "text": "Sunny."}
    memories = memory_api.retrieve_by_time_range("agent-456", 0, 10)
    assert [m["metadata"]["memory_type"] for m in memories] == ["state", "action", "state"]
    assert memories[0]["contents"]["topic"] is None
    assert memories[2]["contents"]["topic"] == "What's the weather today?"
    assert memories[1]["contents"]["params"] == {"observation": {"user_input": "What's the weather today?"}}


# -- similarity, raw vector and content search ----------------------------------------------------


def test_find_similar_states(make_api):
    memory_api = make_api()
    memory_api.store_agent_state(agent_id="agent-123", state_data=STATE, step_number=1234, priority=0.75)
    memory_api.store_agent_state(agent_id="agent-123", state_data={"position": [90, -40], "health": 0.1},
                                 step_number=1300)
    current_state = {"position": [12, 22], "health": 0.8}
    similar_states = memory_api.retrieve_similar_states(agent_id="agent-123", query_state=current_state, k=5)
    assert [m["step_number"] for m in similar_states] == [1234, 1300]
    assert similar_states[0]["similarity_score"] > similar_states[1]["similarity_score"]


def test_raw_vector_search_in_chosen_tiers(make_api):
    memory_api = make_api(search_config={"vector_dim": 8}, stm_config={"memory_limit": 1},
                          im_config={"memory_limit": 1})
    for step, vector in enumerate(([0.1, 0.2, 0.3, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0])):
        memory_api.store_agent_state("agent-123", {"step": step}, step, embedding=vector)
    memory_api.force_memory_maintenance("agent-123")
    tiers = memory_api.get_memory_statistics("agent-123")["tiers"]
    assert tiers["ltm"]["count"] > 0
    embedding = [0.1, 0.2, 0.3, 0, 0, 0, 0, 1]
    memory_space = memory_api.get_memory_space("agent-123")
    similar_memories = memory_space.search_by_embedding(query_embedding=embedding, k=10, memory_tiers=["stm", "im"])
    assert {m["tier"] for m in similar_memories} <= {"stm", "im"}
    assert len(similar_memories) == tiers["stm"]["count"] + tiers["im"]["count"]
    everywhere = memory_space.search_by_embedding(query_embedding=embedding, k=10)
    assert everywhere[0]["step_number"] == 0 and everywhere[0]["similarity_score"] > 0.999
    assert len(everywhere) == 3


@pytest.mark.text
def test_content_based_search(make_api):
    memory_api = make_api()
    memory_api.store_agent_interaction(agent_id="agent-123", interaction_data=INTERACTION, step_number=1235)
    memory_api.store_agent_action(agent_id="agent-123", action_data=TRADE, step_number=1236)
    memory_api.store_agent_state(agent_id="agent-123", state_data={"mood": "sleepy", "weather": "rain"},
                                 step_number=1237)
    memory_space = memory_api.get_memory_space("agent-123")
    memories = memory_space.search_by_content(content_query="trade wood", k=5)
    assert len(memories) == 3
    assert {memories[0]["step_number"], memories[1]["step_number"]} == {1235, 1236}


def test_similarity_results_are_cached(make_api):
    memory_api = make_api()
    memory_api.store_agent_state(agent_id="agent-123", state_data=STATE, step_number=1234)
    memory_space = memory_api.get_memory_space("agent-123")
    current_state = {"position": [12, 22], "health": 0.8}
    similar_states = memory_space.retrieve_similar_states(agent_id="agent-123", query_state=current_state, k=5)
    hits = memory_api._cache.hits
    similar_states_again = memory_space.retrieve_similar_states(agent_id="agent-123", query_state=current_state, k=5)
    assert similar_states_again == similar_states and memory_api._cache.hits == hits + 1
