"""An engine that closes saves the search indices it holds; a new engine on the same data starts
from those files and reads only the change log since, and never trusts a file that no longer
describes the tiers (writes beyond what the log keeps, a cleared agent, a Redis that lost its
data, a damaged file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memory import AgentMemoryAPI

AGENT = "keeper"
OPTIONS = dict(search_config={"text_embedding": "off"}, stm_config={"memory_limit": 600},
               im_config={"memory_limit": 900}, cleanup_interval=10**6)


def rows(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"agent_id": AGENT, "step_number": i,
             "data": {"position": [i % 50, i // 50], "kind": "gold" if i % 100 == 7 else "dirt", "n": i}}
            for i in range(start, stop)]


def answers(api: AgentMemoryAPI) -> dict[str, list[str]]:
    """Answers that come from the in-process indices, over every tier."""
    def ids(found: Any) -> list[str]:
        return [m["memory_id"] for m in found]

    return {"attributes": ids(api.retrieve_by_attributes(AGENT, {"kind": "gold"})),
            "near": ids(api.retrieve_by_location(AGENT, (10, 10), radius=4)),
            "similar": ids(api.retrieve_similar_states(AGENT, {"n": 1234, "kind": "dirt"}, k=7)),
            "all": ids(api.query(AGENT).all())}


def full_loads(api: AgentMemoryAPI) -> list[str]:
    """Tiers the engine reads whole into its indices (a list that fills as it happens)."""
    loads: list[str] = []
    for name in ("stm", "im", "ltm"):
        tier = getattr(api._tiers, name)
        original = tier.derived

        def counted(agent: str, ids: Any = None, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            if ids is None:
                loads.append(_name)
            return _original(agent, ids, **kw)

        tier.derived = counted
    return loads


@pytest.fixture
def saved(make_api: Callable[..., AgentMemoryAPI]) -> dict[str, list[str]]:
    """2,600 memories over the tiers, queried (so the engine holds their indices), then closed."""
    first = make_api(**OPTIONS)
    first.store_many(rows(0, 2600))
    first.force_memory_maintenance(AGENT)
    tiers = first.get_memory_statistics(AGENT)["tiers"]
    assert tiers["stm"]["count"] + tiers["im"]["count"] >= 1000 and tiers["ltm"]["count"] >= 1000, tiers
    before = answers(first)
    first.close()
    assert first._catalog.snapshots.redis_path(AGENT).exists() and first._catalog.snapshots.path(AGENT).exists()
    return before


def test_a_new_engine_starts_from_the_saved_indices(make_api, saved):
    second = make_api(**OPTIONS)
    loads = full_loads(second)
    assert answers(second) == saved
    assert loads == []  # no tier was read whole


def test_writes_after_the_save_are_read_from_the_change_log(make_api, saved):
    other = make_api(**OPTIONS)  # another process writes and moves memories after the save
    other.store_many(rows(2600, 3000))
    other.force_memory_maintenance(AGENT)
    oldest = other.retrieve_by_time_range(AGENT, 0, 0)[0]["memory_id"]
    other.set_importance_score(AGENT, oldest, 0.01)  # a changed row the file holds otherwise
    expected = answers(other)

    second = make_api(**OPTIONS)
    loads = full_loads(second)
    assert answers(second) == expected
    assert loads == []
    rebuilt = make_api(**OPTIONS)
    rebuilt.rebuild_indices(AGENT)
    assert answers(rebuilt) == expected
    assert second.query(AGENT).min_importance(0.5).all()[0]["memory_id"] != oldest


def test_a_log_that_moved_on_past_the_file_means_a_full_load(make_api, saved):
    small = dict(OPTIONS, change_log_limit=100)
    other = make_api(**small)
    for start in range(2600, 3400, 50):  # 800 new ids in 16 writes: more than the log keeps
        other.store_many(rows(start, start + 50))
    expected = answers(other)
    second = make_api(**small)
    loads = full_loads(second)
    assert answers(second) == expected
    assert "stm" in loads and "im" in loads


def test_a_cleared_agent_leaves_its_file_unused(make_api, saved):
    other = make_api(**OPTIONS)
    other.clear_agent_memory(AGENT)
    other.store_many(rows(5000, 5010))
    second = make_api(**OPTIONS)
    found = answers(second)
    assert len(found["all"]) == 10 and found["attributes"] == [m["memory_id"] for m in
                                                              second.retrieve_by_time_range(AGENT, 5007, 5007)]


def test_a_redis_that_lost_its_data_leaves_the_file_unused(make_api, saved, redis_client, prefix):
    redis_client.delete(*redis_client.scan_iter(match=f"{prefix}*"))  # Redis restarted empty
    second = make_api(**OPTIONS)
    found = answers(second)
    in_ltm = [m["memory_id"] for m in second.query(AGENT).in_tiers(["ltm"]).all()]
    assert sorted(found["all"]) == sorted(in_ltm) and len(in_ltm) < len(saved["all"])


def test_a_damaged_file_is_ignored(make_api, saved, caplog):
    first = make_api(**OPTIONS)
    path = first._catalog.snapshots.redis_path(AGENT)
    path.write_bytes(path.read_bytes()[: 5000])
    second = make_api(**OPTIONS)
    loads = full_loads(second)
    assert answers(second) == saved
    assert "stm" in loads and "ignoring the unreadable index file" in caplog.text


def test_a_file_made_with_other_index_settings_is_not_used(make_api, saved):
    other = dict(OPTIONS, search_config={"text_embedding": "off", "attribute_paths": ["kind"], "cell_size": 3.0})
    second = make_api(**other)
    loads = full_loads(second)
    found = answers(second)
    assert found["attributes"] == saved["attributes"] and found["near"] == saved["near"]
    assert {"stm", "im", "ltm"} <= set(loads)  # every tier read whole: the files describe other indices
