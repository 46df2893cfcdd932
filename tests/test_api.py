"""AgentMemoryAPI behaviour as a user sees it: the public names, config, writes, queries, bad
input, the result cache, maintenance policy and statistics. Runs on both Redis engines."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

import memory.api as api_module
from memory.api import (
    MemoryAPIException,
    MemoryConfigException,
    MemoryNotFoundError,
    MemoryStoreException,
    cacheable,
)
from memory.config import LTMConfig, MemoryConfig, RedisIMConfig, RedisSTMConfig

ROOT = Path(__file__).resolve().parent.parent


def steps_of(records):
    return [r["step_number"] for r in records]


# -- the public surface -----------------------------------------------------------------------------
PUBLIC_NAMES = {
    # the engine (memory.api holds these under the Agent Memory API's import path)
    "AgentMemoryAPI", "AsyncAgentMemoryAPI", "AsyncQueryBuilder", "MemorySpace", "QueryBuilder", "QueryResult",
    "ImportReport", "MaintenanceReport",
    "AgentState",
    "ActionResult", "ActionData", "BaseAgent", "install_memory_hooks", "with_memory", "cacheable",
    "process_for_agent", "agents_for_process",
    "MemoryConfig", "RedisSTMConfig", "RedisIMConfig", "LTMConfig", "SearchConfig",
    "MemoryAPIException", "MemoryStoreException", "InvalidInputError", "OutcomeUnknownError",
    "StoreIncompleteError", "MemoryRetrievalException", "MemoryNotFoundError", "PayloadUnreadableError",
    "MemoryMaintenanceException", "MemoryConfigException", "MissingExtraError", "TierUnavailableError",
    # agent teams
    "AgentWorkspace", "RedisShortTermMemory", "AccessTier", "AgentCredentials", "TTLStrategy",
    "AgentCoordinator", "AgentTask", "TeamSession", "StagedPattern", "PatternLibrary", "LibraryPattern",
    "AsyncRedisShortTermMemory", "AsyncAgentWorkspace", "AsyncAgentCoordinator", "AsyncTeamSession",
    "CollaborationState", "ConflictContext", "get_redis_memory", "connect_redis_server", "get_railway_redis",
    "check_redis_connection", "AccessDeniedError", "DuplicateTaskError", "TaskOwnershipError", "NotFoundError",
    # conversations
    "WorkingMemoryAgent", "AgentInput", "IAgentInput", "TurnOutcome", "create_memory_agent", "MemoryManager",
    "InMemoryManager", "RedisMemoryManager", "DatabaseMemoryManager", "TieredMemoryManager",
    "ConversationMemory", "Turn", "ArchivedTurn", "WorkingMemoryPolicy", "LLMClient",
    "InvalidConversationError", "ConversationConflictError", "LLMClientError",
}


def test_the_facade_exports_exactly_the_public_names():
    """A name added to (or dropped from) the public surface is a decision this test records."""
    import memory

    assert set(memory.__all__) == PUBLIC_NAMES and len(memory.__all__) == len(PUBLIC_NAMES)
    public_attributes = {name for name in vars(memory) if not name.startswith("_")}
    # besides __all__, the facade holds only its own subpackages and modules
    assert {name for name in public_attributes - PUBLIC_NAMES if not isinstance(getattr(memory, name), type(memory))} == set()
    for name in memory.__all__:
        assert getattr(memory, name) is not None


def test_memory_api_is_the_engine_part_of_the_facade():
    import memory

    names = {name for name in vars(api_module) if not name.startswith("_")} - {"annotations"}
    assert set(api_module.__all__) == names and names < PUBLIC_NAMES
    assert all(getattr(api_module, name) is getattr(memory, name) for name in names)


def test_exception_tree():
    from memory.api import (
        InvalidInputError,
        MemoryMaintenanceException,
        MemoryRetrievalException,
    )

    for exc in (MemoryStoreException, MemoryRetrievalException, MemoryMaintenanceException, MemoryConfigException):
        assert issubclass(exc, MemoryAPIException)
    assert issubclass(InvalidInputError, MemoryStoreException) and issubclass(InvalidInputError, ValueError)
    assert issubclass(MemoryNotFoundError, KeyError)


# -- configuration -------------------------------------------------------------------------------------
def test_config_accepts_dicts_and_objects():
    by_dict = MemoryConfig(cleanup_interval=100, stm_config={"memory_limit": 10000})
    by_object = MemoryConfig(stm_config=RedisSTMConfig(host="localhost", port=6379, memory_limit=10000, ttl=3600))
    assert by_dict.stm_config.memory_limit == 10000 and isinstance(by_dict.stm_config, RedisSTMConfig)
    assert by_object.stm_config.port == 6379 and by_object.redis_url_option() == "redis://localhost:6379/0"
    assert isinstance(by_dict.im_config, RedisIMConfig) and isinstance(by_dict.ltm_config, LTMConfig)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: MemoryConfig(cleanup_intervall=5), "cleanup_intervall"),
        (lambda: MemoryConfig(stm_config={"memory_limt": 5}), "memory_limt"),
        (lambda: RedisSTMConfig(hots="x"), "hots"),
        (lambda: MemoryConfig(im_config={"compression": 3}), "compression"),
        (lambda: MemoryConfig(ltm_config={"uri": "sqlite://"}), "uri"),
    ],
)
def test_unknown_options_are_named(build, name):
    with pytest.raises(MemoryConfigException, match=name):
        build()


@pytest.mark.parametrize(
    "options",
    [
        {"cleanup_interval": 0},
        {"memory_priority_decay": 1.5},
        {"stm_config": {"memory_limit": -1}},
        {"stm_config": {"ttl": float("nan")}},
        {"key_prefix": "has space"},
        {"key_prefix": "{tag}"},
        {"im_config": {"compression_level": 40}},
        {"stm_config": "not a config"},
    ],
)
def test_bad_option_values_are_refused(options):
    with pytest.raises(MemoryConfigException):
        MemoryConfig(**options)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_config_files_load(path):
    config = MemoryConfig.from_file(path)
    assert config.stm_config.memory_limit > 0


def test_config_file_with_unknown_section_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("cleanup_interval = 10\n[stmm]\nmemory_limit = 3\n")
    with pytest.raises(MemoryConfigException, match="stmm"):
        MemoryConfig.from_file(path)


def test_two_engines_with_different_configs_are_independent(make_api, prefix):
    first = make_api(key_prefix=prefix + "a", stm_config={"memory_limit": 5})
    second = make_api(key_prefix=prefix + "b", stm_config={"memory_limit": 50})
    first.store_agent_state("agent", {"v": 1}, 1)
    assert second.retrieve_by_time_range("agent", 0, 10) == []
    assert first.config.stm_config.memory_limit == 5 and second.config.stm_config.memory_limit == 50
    first.close()
    with pytest.raises(MemoryAPIException):
        first.store_agent_state("agent", {"v": 2}, 2)
    second.store_agent_state("agent", {"v": 3}, 3)
    assert steps_of(second.retrieve_by_time_range("agent", 0, 10)) == [3]


# -- writes and the record form --------------------------------------------------------------------------
def test_record_comes_back_in_the_memory_structure_form(api):
    contents = {
        "position": [10, 20],
        "health": 0.85,
        "inventory": {"wood": 5, "stone": 2},
        "name": "Åsa 🌲",
        "raw": b"\x00\xff",
        "big": 2**62,
        "nothing": None,
        "flags": [True, False],
    }
    memory_id = api.store_agent_state("agent-123", contents, 1234, priority=0.75)
    record = api.get_memory("agent-123", memory_id)
    assert record["memory_id"] == memory_id and record["agent_id"] == "agent-123"
    assert record["step_number"] == 1234 and record["contents"] == contents
    metadata = record["metadata"]
    assert metadata["memory_type"] == "state" and metadata["importance_score"] == 0.75
    assert metadata["compression_level"] == 0 and metadata["retrieval_count"] == 1
    assert metadata["creation_time"] == record["timestamp"] and metadata["last_access_time"] >= record["timestamp"]
    assert record["tier"] == "stm" and metadata["tier"] == "stm"
    assert set(record["embeddings"]) == {"full_vector", "compressed_vector", "abstract_vector"}


def test_returned_contents_are_copies(api):
    memory_id = api.store_agent_state("a", {"inventory": {"wood": 1}}, 1)
    first = api.retrieve_by_time_range("a", 0, 5)
    first[0]["contents"]["inventory"]["wood"] = 999
    again = api.retrieve_by_time_range("a", 0, 5)  # served by the cache
    assert again[0]["contents"] == {"inventory": {"wood": 1}}
    assert api.get_memory("a", memory_id)["contents"] == {"inventory": {"wood": 1}}


def test_ids_are_unique_within_one_step_and_second(api):
    ids = [api.store_agent_state("a", {"i": i}, 7) for i in range(200)]
    ids += api.store_many({"agent_id": "a", "data": {"i": i}, "step_number": 7} for i in range(200))
    assert len(set(ids)) == 400
    # same-step memories come back in creation order
    assert [r["contents"]["i"] for r in api.retrieve_by_time_range("a", 7, 7)] == list(range(200)) * 2


def test_store_many_types_priorities_and_order(api):
    ids = api.store_many(
        [
            {"agent_id": "a", "data": {"k": 1}, "step_number": 3, "memory_type": "action", "priority": 0.2},
            {"agent_id": "b", "data": {"k": 2}, "step_number": 1},
            {"agent_id": "a", "data": {"k": 3}, "step_number": 2, "memory_type": "interaction"},
        ]
    )
    assert len(ids) == 3
    a = api.retrieve_by_time_range("a", 0, 10)
    assert [r["memory_id"] for r in a] == [ids[2], ids[0]]
    assert [r["metadata"]["memory_type"] for r in a] == ["interaction", "action"]
    assert a[1]["metadata"]["importance_score"] == 0.2
    assert api.retrieve_by_time_range("b", 0, 10)[0]["metadata"]["memory_type"] == "state"
    assert api.store_many([]) == []


# -- bad input -----------------------------------------------------------------------------------------
class Opaque:
    pass


BAD_WRITES = [
    ("", {"a": 1}, 1, 1.0, "empty"),
    ("x" * 129, {"a": 1}, 1, 1.0, "128"),
    ("agent{1}", {"a": 1}, 1, 1.0, "{"),
    ("agent 1", {"a": 1}, 1, 1.0, "' '"),
    ("agent\n", {"a": 1}, 1, 1.0, "agent"),
    (42, {"a": 1}, 1, 1.0, "str"),
    ("agent", {"a": 1}, -1, 1.0, "step_number"),
    ("agent", {"a": 1}, 1.5, 1.0, "step_number"),
    ("agent", {"a": 1}, True, 1.0, "step_number"),
    ("agent", {"a": 1}, "3", 1.0, "step_number"),
    ("agent", {"a": {1, 2}}, 1, 1.0, "serialized"),
    ("agent", {"a": Opaque()}, 1, 1.0, "Opaque"),
    ("agent", {"a": {(1, 2): "pair"}}, 1, 1.0, "read back"),
    ("agent", ["not", "a", "dict"], 1, 1.0, "dict"),
    ("agent", {"a": 1}, 1, 1.5, "priority"),
    ("agent", {"a": 1}, 1, math.nan, "priority"),
    ("agent", {"a": "x" * 2_000_000}, 1, 1.0, "limit"),
]


@pytest.mark.parametrize("agent_id, data, step, priority, words", BAD_WRITES)
def test_bad_writes_get_a_clear_error_and_touch_nothing(api, agent_id, data, step, priority, words):
    kept = api.store_agent_state("agent", {"kept": True}, 5)
    with pytest.raises(MemoryStoreException, match=words.replace("{", r"\{").replace("(", r"\(")) as caught:
        api.store_agent_state(agent_id, data, step, priority=priority)
    assert isinstance(caught.value, ValueError)
    assert [r["memory_id"] for r in api.retrieve_by_time_range("agent", 0, 100)] == [kept]


def test_store_many_validates_everything_before_writing(api):
    with pytest.raises(MemoryStoreException, match="record 2"):
        api.store_many(
            [
                {"agent_id": "a", "data": {"i": 0}, "step_number": 0},
                {"agent_id": "a", "data": {"i": 1}, "step_number": 1},
                {"agent_id": "a", "data": {"i": 2}, "step_number": 2, "memory_type": "dream"},
            ]
        )
    with pytest.raises(MemoryStoreException, match="unknown keys"):
        api.store_many([{"agent_id": "a", "data": {}, "step_number": 0, "steps": 3}])
    assert api.retrieve_by_time_range("a", 0, 10) == []


@pytest.mark.parametrize("records", [None, 5, "abc", {"agent_id": "a", "data": {}, "step_number": 1}])
def test_store_many_of_something_not_a_list_of_records_is_a_clear_error(api, records):
    kept = api.store_agent_state("a", {"i": 0}, 0)
    with pytest.raises(MemoryStoreException, match="store_many takes an iterable of records"):
        api.store_many(records)
    assert [r["memory_id"] for r in api.retrieve_by_time_range("a", 0, 10)] == [kept]


@pytest.mark.parametrize(
    "call",
    [
        lambda api: api.retrieve_by_time_range("a", 10, 5),
        lambda api: api.retrieve_by_time_range("a", -1, 5),
        lambda api: api.retrieve_by_time_range("a", 0, 5, memory_type="dream"),
        lambda api: api.retrieve_by_attributes("a", {}),
        lambda api: api.retrieve_by_attributes("a", {"inventory..wood": 1}),
        lambda api: api.retrieve_recent("a", count=-1),
        lambda api: api.get_memory("bad id!", "x"),
        lambda api: api.set_importance_score("a", "x", 2.0),
    ],
)
def test_bad_queries_raise_value_errors(api, call):
    with pytest.raises(ValueError):
        call(api)


def test_numpy_values_are_stored_as_plain_numbers(api):
    np = pytest.importorskip("numpy")
    memory_id = api.store_agent_state("a", {"x": np.float32(0.5), "v": np.arange(3), "n": np.int64(7)}, 1)
    assert api.get_memory("a", memory_id)["contents"] == {"x": 0.5, "v": [0, 1, 2], "n": 7}


# -- queries -------------------------------------------------------------------------------------------
@pytest.fixture
def trading_agent(api):
    for step in range(50):
        api.store_agent_state("t", {"position": [step, step % 7], "inventory": {"wood": step % 5}}, step,
                              priority=(step % 10) / 10)
        if step % 10 == 3:
            api.store_agent_action("t", {"action_type": "trade", "outcome": "success" if step % 20 == 3 else "failure",
                                         "items_given": {"wood": 2}}, step)
        if step % 25 == 4:
            api.store_agent_interaction("t", {"interaction_type": "conversation", "content": "wood?"}, step)
    return api


def test_time_range_is_inclusive_ordered_and_filtered(trading_agent):
    api = trading_agent
    assert steps_of(api.retrieve_by_time_range("t", 10, 20, memory_type="state")) == list(range(10, 21))
    assert steps_of(api.retrieve_by_time_range("t", 0, 49, memory_type="action")) == [3, 13, 23, 33, 43]
    assert steps_of(api.retrieve_by_time_range("t", 4, 4)) == [4, 4]
    assert steps_of(api.retrieve_by_time_range("t", 5, 40, limit=3)) == [5, 6, 7]
    assert api.retrieve_by_time_range("t", 100, 200) == []
    assert api.retrieve_by_time_range("nobody", 0, 200) == []


def test_attribute_queries_match_dot_paths_exactly(trading_agent):
    api = trading_agent
    wins = api.retrieve_by_attributes("t", {"action_type": "trade", "outcome": "success"}, memory_type="action")
    assert steps_of(wins) == [3, 23, 43]
    assert steps_of(api.retrieve_by_attributes("t", {"inventory.wood": 3})) == [3, 8, 13, 18, 23, 28, 33, 38, 43, 48]
    assert steps_of(api.retrieve_by_attributes("t", {"position.1": 0, "inventory.wood": 0})) == [0, 35]
    assert steps_of(api.retrieve_by_attributes("t", {"items_given": {"wood": 2}}, limit=2)) == [3, 13]
    assert api.retrieve_by_attributes("t", {"inventory.wood": True}) == []  # True is not 1
    assert api.retrieve_by_attributes("t", {"inventory.iron": 0}) == []


def test_recent_and_most_important(trading_agent):
    api = trading_agent
    space = api.get_memory_space("t")
    assert steps_of(space.retrieve_recent_states(count=3, memory_type="state")) == [49, 48, 47]
    assert steps_of(space.retrieve_recent_states(count=2, memory_type="action")) == [43, 33]
    top = api.retrieve_most_important("t", k=5, memory_type="state")
    assert [r["metadata"]["importance_score"] for r in top] == [0.9] * 5
    assert steps_of(top) == [49, 39, 29, 19, 9]


def test_importance_can_be_changed_and_a_missing_memory_is_an_error(api):
    memory_id = api.store_agent_state("a", {"x": 1}, 1, priority=0.1)
    api.store_agent_state("a", {"x": 2}, 2, priority=0.5)
    assert steps_of(api.retrieve_most_important("a", k=1)) == [2]
    api.set_importance_score("a", memory_id, 0.9)
    assert steps_of(api.retrieve_most_important("a", k=1)) == [1]
    with pytest.raises(MemoryNotFoundError):
        api.set_importance_score("a", "a-1-doesnotexist", 0.3)
    assert api.get_memory("a", "a-1-doesnotexist") is None


def test_clear_agent_memory_removes_every_tier_and_only_that_agent(make_api):
    api = make_api(stm_config={"memory_limit": 5}, im_config={"memory_limit": 5, "low_watermark": 1.0},
                   ltm_config={"dictionary_samples": 5})
    for step in range(30):
        api.store_many([{"agent_id": "a", "data": {"s": step}, "step_number": step},
                        {"agent_id": "b", "data": {"s": step}, "step_number": step}])
    api.force_memory_maintenance()
    assert {r["tier"] for r in api.retrieve_by_time_range("a", 0, 30)} == {"stm", "im", "ltm"}
    assert api.clear_agent_memory("a") == 30
    assert api.retrieve_by_time_range("a", 0, 30) == []
    assert api.get_memory_statistics("a")["total_memories"] == 0
    assert len(api.retrieve_by_time_range("b", 0, 30)) == 30
    api.store_agent_state("a", {"again": True}, 3)
    assert steps_of(api.retrieve_by_time_range("a", 0, 30)) == [3]


# -- the result cache -----------------------------------------------------------------------------------
def test_cache_answers_repeats_and_a_write_invalidates(api):
    api.store_agent_state("a", {"x": 1}, 1)
    api.retrieve_by_time_range("a", 0, 10)
    api.retrieve_by_time_range("a", 0, 10)
    assert api.get_memory_statistics("a")["cache"]["hits"] == 1
    api.store_agent_state("a", {"x": 2}, 2)
    assert steps_of(api.retrieve_by_time_range("a", 0, 10)) == [1, 2]
    api.clear_cache()
    api.set_cache_ttl(300)
    assert api.get_memory_statistics("a")["cache"]["ttl"] == 300
    with pytest.raises(MemoryConfigException):
        api.set_cache_ttl(0)


def test_a_write_by_another_engine_invalidates_this_cache(make_api, prefix):
    reader, writer = make_api(), make_api()
    reader.store_agent_state("a", {"x": 1}, 1)
    assert len(reader.retrieve_by_time_range("a", 0, 10)) == 1
    writer.store_agent_state("a", {"x": 2}, 2)
    assert steps_of(reader.retrieve_by_time_range("a", 0, 10)) == [1, 2]
    memory_id = reader.retrieve_by_time_range("a", 0, 10)[0]["memory_id"]
    writer.set_importance_score("a", memory_id, 0.01)
    assert reader.retrieve_by_time_range("a", 0, 1)[0]["metadata"]["importance_score"] == 0.01


def test_cacheable_caches_by_arguments_until_the_ttl(clock):
    calls = []

    @cacheable(ttl=60, timer=clock)
    def expensive(agent_id, query):
        calls.append((agent_id, query))
        return len(calls)

    assert expensive("agent-123", "find wood") == 1
    assert expensive("agent-123", "find wood") == 1
    assert expensive("agent-123", "find stone") == 2
    clock.advance(61)
    assert expensive("agent-123", "find wood") == 3
    assert expensive("agent-123", ["unhashable"]) == 4 and expensive("agent-123", ["unhashable"]) == 5
    expensive.cache_clear()
    assert expensive("agent-123", "find stone") == 6


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 0, -1, True, "60"])
def test_a_ttl_that_is_not_a_finite_positive_number_is_refused(api, seconds):
    with pytest.raises(MemoryConfigException, match="finite, positive number of seconds"):
        api.set_cache_ttl(seconds)
    with pytest.raises(ValueError, match="finite, positive number of seconds"):
        cacheable(ttl=seconds)


# -- maintenance policy ---------------------------------------------------------------------------------
def tier_counts(api, agent):
    tiers = api.get_memory_statistics(agent)["tiers"]
    return {name: tiers[name]["count"] for name in ("stm", "im", "ltm")}


def test_capacity_moves_memories_down_and_they_stay_findable(make_api):
    api = make_api(cleanup_interval=10, stm_config={"memory_limit": 20},
                   im_config={"memory_limit": 30, "low_watermark": 1.0}, ltm_config={"dictionary_samples": 20})
    for step in range(100):
        state = {"step": step, "inventory": {"wood": step % 3, "stone": 4}, "goal": "gather wood",
                 "position": [step % 10, step // 10], "health": 0.75, "mood": "calm", "alive": True}
        api.store_agent_state("a", state, step)
    counts = tier_counts(api, "a")
    assert counts["stm"] <= 20 + 10 and sum(counts.values()) == 100
    report = api.force_memory_maintenance("a")
    assert tier_counts(api, "a") == {"stm": 20, "im": 30, "ltm": 50}
    assert report.agents == 1
    everything = api.retrieve_by_time_range("a", 0, 99)
    assert steps_of(everything) == list(range(100))
    assert all(r["contents"]["step"] == r["step_number"] for r in everything)
    assert len(api.retrieve_by_attributes("a", {"inventory.wood": 1})) == 33
    stats = api.get_memory_statistics("a")
    assert stats["tiers"]["ltm"]["compression_ratio"] > 1.0


def test_process_statistics_add_up_every_maintenance_run_forced_and_automatic(make_api):
    api = make_api(cleanup_interval=10, stm_config={"memory_limit": 5},
                   im_config={"memory_limit": 5, "low_watermark": 1.0}, ltm_config={"dictionary_samples": 5})
    assert api.get_process_statistics()["maintenance"]["runs"] == 0
    for step in range(30):
        api.store_agent_state("a", {"s": step}, step)  # a run after every 10th store
    automatic = api.get_process_statistics()["maintenance"]
    assert automatic["runs"] == 3 and automatic["failed"] == 0 and automatic["moved"] > 0
    report = api.force_memory_maintenance("a")
    totals = api.get_process_statistics()["maintenance"]
    assert tier_counts(api, "a") == {"stm": 5, "im": 5, "ltm": 20}
    assert (totals["runs"], totals["stm_to_im"], totals["im_to_ltm"], totals["ltm_to_im"]) == (4, 25, 20, 0)
    assert totals["moved"] == automatic["moved"] + report.moved == 45
    assert totals["seconds"] >= automatic["seconds"] + report.seconds - 1e-9
    api.retrieve_by_time_range("a", 0, 3)
    api.retrieve_by_time_range("a", 0, 3)
    assert api.get_process_statistics()["cache"] == api.get_memory_statistics()["cache"]


def test_background_maintenance_keeps_the_tiers_within_a_run_of_their_limits(make_api):
    api = make_api(maintenance_mode="background", cleanup_interval=50, stm_config={"memory_limit": 100},
                   im_config={"memory_limit": 200, "low_watermark": 1.0})
    worst = 0
    for start in range(0, 2000, 50):
        api.store_many([{"agent_id": "a", "step_number": step, "data": {"s": step}} for step in range(start, start + 50)])
        worst = max(worst, tier_counts(api, "a")["stm"])
    assert worst <= 100 + 3 * 50  # the run going, one queued, and the batch that waited for them
    api.force_memory_maintenance("a")  # waits for the thread first: nothing is busy
    assert tier_counts(api, "a") == {"stm": 100, "im": 200, "ltm": 1700}
    assert steps_of(api.retrieve_by_time_range("a", 0, 1999)) == list(range(2000))


def test_closing_runs_the_background_maintenance_already_due(make_api):
    api = make_api(maintenance_mode="background", cleanup_interval=10, stm_config={"memory_limit": 10})
    for agent in ("a", "b", "c"):
        api.store_many([{"agent_id": agent, "step_number": step, "data": {"s": step}} for step in range(30)])
    api.close()
    again = make_api()
    assert [tier_counts(again, agent)["stm"] for agent in ("a", "b", "c")] == [10, 10, 10]


@pytest.mark.parametrize("mode", ["later", "", None, 1])
def test_an_unknown_maintenance_mode_is_refused(mode):
    with pytest.raises(MemoryConfigException, match="maintenance_mode must be one of"):
        MemoryConfig(maintenance_mode=mode)


def test_importance_decides_who_stays_in_stm(make_api):
    api = make_api(cleanup_interval=1000, stm_config={"memory_limit": 10}, memory_priority_decay=0.5,
                   decay_steps=100)
    ids = {}
    for step in range(30):
        ids[step] = api.store_agent_state("a", {"s": step}, step, priority=1.0 if step < 5 else 0.1)
    api.force_memory_maintenance("a")
    kept = {r["step_number"] for r in api.retrieve_by_time_range("a", 0, 29) if r["tier"] == "stm"}
    assert set(range(5)) <= kept and len(kept) == 10


def stm_steps(api, agent, last):
    return {r["step_number"] for r in api.retrieve_by_time_range(agent, 0, last) if r["tier"] == "stm"}


def expected_stm(importances, kept, decay, decay_steps, newest, read_at=None):
    """The steps the retention formula keeps: importance x decay ** (age / decay_steps)."""
    read_at = read_at or {}
    def retention(step):
        age = newest - max(step, read_at.get(step, step))
        return importances[step] * decay ** (age / decay_steps)
    return set(sorted(importances, key=lambda step: (-retention(step), -step))[:kept])


def test_importance_and_age_together_decide_who_stays(make_api):
    rng = random.Random(7)
    importances = {step: rng.choice([0.0, 0.1, 0.3, 0.6, 0.9, 1.0]) for step in range(200)}
    api = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 40}, memory_priority_decay=0.7,
                   decay_steps=25)
    for step, importance in importances.items():
        api.store_agent_state("a", {"s": step}, step, priority=importance)
    api.force_memory_maintenance("a")
    assert stm_steps(api, "a", 199) == expected_stm(importances, 40, 0.7, 25, 199)


def test_a_read_makes_a_memory_as_young_as_the_agent_was_then(make_api):
    api = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 10}, memory_priority_decay=0.5, decay_steps=1)
    importances = {step: 0.6 if step == 0 else 0.5 for step in range(30)}
    first = api.store_agent_state("a", {"s": 0}, 0, priority=0.6)
    for step in range(1, 30):
        if step == 25:
            assert api.get_memory("a", first)["step_number"] == 0  # a focused read when the newest step is 24
        api.store_agent_state("a", {"s": step}, step, priority=importances[step])
    api.force_memory_maintenance("a")
    assert stm_steps(api, "a", 29) == expected_stm(importances, 10, 0.5, 1, 29, read_at={0: 24}) == {0, *range(21, 30)}


def test_zero_importance_goes_before_any_positive_one_oldest_first(make_api):
    api = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 5})
    for step in range(10):
        api.store_agent_state("a", {"s": step}, step, priority=0.0 if step >= 5 else 1e-300)
    api.force_memory_maintenance("a")
    assert stm_steps(api, "a", 9) == {0, 1, 2, 3, 4}
    for step in range(10, 15):
        api.store_agent_state("a", {"s": step}, step, priority=0.0)
    api.force_memory_maintenance("a")
    assert stm_steps(api, "a", 14) == {0, 1, 2, 3, 4}  # each zero, older or newer, went first


def test_retention_keys_lost_or_made_with_other_settings_are_made_again(make_api, redis_client):
    rng = random.Random(3)
    importances = {step: rng.choice([0.2, 0.5, 1.0]) for step in range(120)}
    writer = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 1000}, memory_priority_decay=0.99)
    for step, importance in importances.items():
        writer.store_agent_state("a", {"s": step}, step, priority=importance)
    keys = writer._tiers.keys
    redis_client.delete(keys.tier("a", "stm").retention)  # as an agent stored before the index existed
    redis_client.hdel(keys.meta("a"), "rrate")
    maintainer = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 60}, memory_priority_decay=0.5,
                          decay_steps=10)
    maintainer.force_memory_maintenance("a")
    assert stm_steps(maintainer, "a", 119) == expected_stm(importances, 60, 0.5, 10, 119)
    assert redis_client.hget(keys.meta("a"), "rrate").decode() == repr(maintainer.config.retention_rate)
    # the writer's own setting does not mix into the agent's keys
    for step in range(120, 180):
        importances[step] = rng.choice([0.2, 0.5, 1.0])
        writer.store_agent_state("a", {"s": step}, step, priority=importances[step])
    held = {step: importances[step] for step in stm_steps(maintainer, "a", 179)}
    maintainer.force_memory_maintenance("a")
    assert stm_steps(maintainer, "a", 179) == expected_stm(held, 60, 0.5, 10, 179)


def test_reindexing_makes_the_retention_keys_again(make_api, redis_client):
    api = make_api(cleanup_interval=10**6)
    ids = [api.store_agent_state("a", {"s": step}, step, priority=step / 10) for step in range(10)]
    retention = api._tiers.keys.tier("a", "stm").retention
    before = redis_client.zrange(retention, 0, -1, withscores=True)
    assert [member.decode() for member, _ in before] == ids  # importance and step rise together
    rate = api.config.retention_rate
    assert [key for _, key in before] == [-1e12] + [math.log(step / 10) + step * rate for step in range(1, 10)]
    redis_client.delete(retention)
    api.rebuild_indices("a")
    assert redis_client.zrange(retention, 0, -1, withscores=True) == before


def test_ttl_demotes_old_memories(make_api, clock):
    api = make_api(clock=clock, cleanup_interval=1000, stm_config={"ttl": 60}, im_config={"ttl": 600})
    api.store_agent_state("a", {"old": True}, 1)
    clock.advance(61)
    api.store_agent_state("a", {"old": False}, 2)
    api.force_memory_maintenance("a")
    assert [r["tier"] for r in api.retrieve_by_time_range("a", 0, 5)] == ["im", "stm"]
    clock.advance(601)
    api.force_memory_maintenance("a")
    assert [r["tier"] for r in api.retrieve_by_time_range("a", 0, 5)] == ["ltm", "im"]


def test_ttl_counts_from_the_microsecond_a_memory_entered_its_tier(make_api, clock, redis_client):
    api = make_api(clock=clock, cleanup_interval=1000, stm_config={"ttl": 0.5})
    clock.advance(0.123456)
    entered = clock()
    memory_id = api.store_agent_state("a", {"s": 1}, 1)
    score = redis_client.zscore(api._tiers.keys.tier("a", "stm").since, memory_id)
    assert score == round(entered * 1_000_000)  # an integer score: cheap in Redis's small sorted sets
    clock.advance(0.4999)
    api.force_memory_maintenance("a")
    assert api.get_memory("a", memory_id)["tier"] == "stm"
    clock.advance(0.0002)
    api.force_memory_maintenance("a")
    assert api.get_memory("a", memory_id)["tier"] == "im"


def test_moves_to_ltm_keep_the_payload_im_compressed(make_api, redis_client):
    api = make_api(cleanup_interval=1000, stm_config={"memory_limit": 40},
                   im_config={"memory_limit": 20, "low_watermark": 1.0}, ltm_config={"dictionary_samples": 10})
    stored = {step: {"step": step, "terrain": ["grass", "rock"][step % 2], "inventory": {"wood": step % 7}}
              for step in range(60)}
    ids = {step: api.store_agent_state("a", data, step) for step, data in stored.items()}
    api.force_memory_maintenance("a")  # 20 to IM, compressed with the dictionary trained on them
    codec = api._tiers.codec
    compressed = []
    compress = codec.compress
    codec.compress = lambda blob: compressed.append(blob) or compress(blob)
    api.config.stm_config.memory_limit = 60
    api.config.im_config.memory_limit = 5
    report = api.force_memory_maintenance("a")
    assert report.im_to_ltm == 15 and report.stm_to_im == 0
    assert compressed == []
    answer = api.retrieve_by_time_range("a", 0, 59)
    assert [r["tier"] for r in answer].count("ltm") == 15
    assert [(r["memory_id"], r["contents"]) for r in answer] == [(ids[s], stored[s]) for s in range(60)]


def test_often_read_long_term_memories_come_back_to_im(make_api):
    api = make_api(cleanup_interval=1000, stm_config={"memory_limit": 5},
                   im_config={"memory_limit": 5, "low_watermark": 1.0},
                   ltm_config={"promote_threshold": 3, "dictionary_samples": 5})
    ids = [api.store_agent_state("a", {"s": step}, step) for step in range(30)]
    api.force_memory_maintenance("a")
    assert api.get_memory("a", ids[0])["tier"] == "ltm"
    for _ in range(2):
        api.get_memory("a", ids[0])
    report = api.force_memory_maintenance("a")
    assert report.ltm_to_im == 1
    record = api.get_memory("a", ids[0])
    assert record["tier"] == "im" and record["metadata"]["retrieval_count"] == 4
    # the promoted memory was read recently, so the next maintenance keeps it in IM
    api.force_memory_maintenance("a")
    assert api.get_memory("a", ids[0])["tier"] == "im"
    assert len(api.retrieve_by_time_range("a", 0, 29)) == 30


def test_queries_report_focused_reads_at_once_in_every_tier(make_api, clock):
    api = make_api(clock=clock, cleanup_interval=1000, stm_config={"memory_limit": 2},
                   im_config={"memory_limit": 2, "low_watermark": 1.0}, ltm_config={"dictionary_samples": 5})
    for step in range(10):
        api.store_agent_state("a", {"s": step, "position": [step, 0]}, step)
    api.force_memory_maintenance("a")
    by_tier = {r["tier"]: r["memory_id"] for r in api.retrieve_by_time_range("a", 0, 9)}
    assert set(by_tier) == {"stm", "im", "ltm"}

    def counts(answer):
        return {r["tier"]: r["metadata"]["retrieval_count"] for r in answer if r["memory_id"] in by_tier.values()}

    queries = {
        "range": lambda: api.retrieve_by_time_range("a", 0, 9),
        "attributes": lambda: api.retrieve_by_attributes("a", {"position.1": 0}),
        "recent": lambda: api.get_memory_space("a").retrieve_recent_states(count=10),
        "important": lambda: api.retrieve_most_important("a", k=10),
        "similar": lambda: api.retrieve_similar_states("a", {"s": 0, "position": [0, 0]}, k=10),
        "place": lambda: api.retrieve_by_location("a", [0, 0], radius=20),
    }
    for query in queries.values():
        query()  # every answer cached with the counts before the reads
    clock.advance(5)
    for memory_id in by_tier.values():
        for _ in range(2):
            api.get_memory("a", memory_id)
    for name, query in queries.items():
        answer = counts(query())
        assert set(answer.values()) == {2}, name
    (ltm,) = [r for r in api.retrieve_by_time_range("a", 0, 9) if r["tier"] == "ltm" and r["memory_id"] == by_tier["ltm"]]
    assert ltm["metadata"]["last_access_time"] == clock()
    api.force_memory_maintenance("a")  # flushes the LTM reads into SQL: counted once, not twice
    assert counts(api.retrieve_by_time_range("a", 0, 9))["ltm"] == 2


def test_statistics_report_everything_promised(api):
    api.store_agent_state("a", {"x": 1}, 1, priority=0.2)
    api.store_agent_action("a", {"y": 2}, 2, priority=0.8)
    stats = api.get_memory_statistics("a")
    assert stats["mode"] in ("redis", "embedded")
    assert stats["total_memories"] == 2
    assert stats["memory_type_distribution"] == {"state": 1, "action": 1, "interaction": 0}
    assert stats["importance"]["min"] == 0.2 and stats["importance"]["max"] == 0.8
    assert stats["importance"]["mean"] == pytest.approx(0.5)
    for tier in ("stm", "im", "ltm"):
        assert {"count", "bytes", "compression_ratio"} <= set(stats["tiers"][tier])
    assert stats["tiers"]["stm"]["bytes"] > 0
    assert 0.0 <= stats["cache_hit_rate"] <= 1.0
    everyone = api.get_memory_statistics()
    assert everyone["total_memories"] == 2 and everyone["agents"] == 1


def test_maintenance_stops_when_another_process_takes_its_lease(make_api, redis_client, monkeypatch):
    from memory._engine.maintenance import LeaseLost, Maintainer

    api = make_api(cleanup_interval=10_000, stm_config={"memory_limit": 10}, ltm_config={"batch_size": 10})
    stored = {api.store_agent_state("a", {"s": step}, step): step for step in range(60)}
    lock = api._tiers.keys.lock("a")
    original = Maintainer._stm_to_im
    batches = []

    def first_batch_then_lose_the_lease(self, agent_id, ids):
        batches.append(len(ids))
        moved = original(self, agent_id, ids)
        redis_client.set(lock, "someone-else", px=60_000)  # our lease expired; another process holds it
        return moved

    monkeypatch.setattr(Maintainer, "_stm_to_im", first_batch_then_lose_the_lease)
    with pytest.raises(MemoryAPIException) as caught:
        api.force_memory_maintenance("a")
    assert isinstance(caught.value.__cause__, LeaseLost) and batches == [10]
    assert redis_client.get(lock) == b"someone-else"  # not released by the process that lost it
    everything = api.retrieve_by_time_range("a", 0, 59)
    assert {r["memory_id"]: r["contents"]["s"] for r in everything} == stored and len(everything) == 60


@pytest.mark.parametrize("ltm_config", [{"url": "nonsense://nowhere"}, {"url": "postgresql+nodriver://x/y"},
                                        {"db_path": "/proc/forbidden/ltm.sqlite"}])
def test_an_unusable_long_term_store_is_a_config_error(make_api, ltm_config):
    with pytest.raises(MemoryConfigException, match="long-term store"):
        make_api(ltm_config=ltm_config)


def test_clear_waits_for_another_processs_maintenance_and_touches_nothing_if_it_never_ends(make_api, redis_client):
    api = make_api(maintenance_lock_timeout=0.1)
    memory_id = api.store_agent_state("a", {"kept": True}, 1)
    redis_client.set(api._tiers.keys.lock("a"), "another-process", px=60_000)
    with pytest.raises(MemoryStoreException, match="being maintained"):
        api.clear_agent_memory("a")
    assert api.get_memory("a", memory_id)["contents"] == {"kept": True}
    redis_client.delete(api._tiers.keys.lock("a"))
    assert api.clear_agent_memory("a") == 1
