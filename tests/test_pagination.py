"""Pages: every list-returning query takes ``offset``, and its pages, read one after another,
are the whole answer, whichever tiers hold the memories."""

from __future__ import annotations

from typing import Any

import pytest

from memory import InvalidInputError

AGENT = "pager"
N = 60


@pytest.fixture
def spread(make_api: Any) -> Any:
    """60 placed states over the three tiers, every third one with outcome "success"."""
    api = make_api(stm_config={"memory_limit": 10}, im_config={"memory_limit": 20}, cleanup_interval=10**6,
                   search_config={"state_vectors": True})  # search_by_embedding ranks the state vectors
    api.store_many([{"agent_id": AGENT, "step_number": step, "priority": (step % 7) / 7,
                     "data": {"position": [step % 8, step // 8], "outcome": "success" if step % 3 == 0 else "none",
                              "n": step}} for step in range(N)])
    api.force_memory_maintenance(AGENT)
    tiers = api.get_memory_statistics(AGENT)["tiers"]
    assert all(tiers[tier]["count"] for tier in ("stm", "im", "ltm")), tiers
    return api


CALLS = {
    "time range": lambda api, size, offset: api.retrieve_by_time_range(AGENT, 5, 50, limit=size, offset=offset),
    "recent": lambda api, size, offset: api.retrieve_recent(AGENT, size, offset=offset),
    "most important": lambda api, size, offset: api.retrieve_most_important(AGENT, size, offset=offset),
    "attributes": lambda api, size, offset: api.retrieve_by_attributes(AGENT, {"outcome": "success"}, limit=size,
                                                                       offset=offset),
    "similar": lambda api, size, offset: api.retrieve_similar_states(AGENT, {"position": [3, 3], "n": 20}, size,
                                                                     offset=offset),
    "embedding": lambda api, size, offset: api.search_by_embedding(AGENT, [1.0, -0.5] * 64, size, offset=offset),
    "location": lambda api, size, offset: api.retrieve_by_location(AGENT, (3, 3), 4.0, limit=size, offset=offset),
    "nearest": lambda api, size, offset: api.retrieve_nearest(AGENT, (3, 3), size, offset=offset),
    "query": lambda api, size, offset: api.query(AGENT).between(0, 40).where({"n": {"$gte": 4}}).top(size,
                                                                                                    offset=offset),
    "space": lambda api, size, offset: api.get_memory_space(AGENT).retrieve_by_time_range(0, N, limit=size,
                                                                                         offset=offset),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_pages_read_in_turn_are_the_whole_answer(spread, name):
    call = CALLS[name]
    whole = [m["memory_id"] for m in call(spread, 40, 0)]
    assert len(whole) >= 12, name
    pages: list[str] = []
    for offset in range(0, 40, 7):
        spread.clear_cache() if offset % 2 else None  # from the kept answer and computed afresh alike
        pages += [m["memory_id"] for m in call(spread, 7, offset)][: min(7, 40 - offset)]
    assert pages == whole


def test_an_offset_past_the_answer_gives_nothing_and_all_pages_too(spread):
    assert spread.retrieve_by_time_range(AGENT, 0, N, offset=N) == []
    everything = [m["step_number"] for m in spread.query(AGENT).where({"outcome": "success"}).all()]
    rest = [m["step_number"] for m in spread.query(AGENT).where({"outcome": "success"}).all(offset=5)]
    assert rest == everything[5:]


@pytest.mark.parametrize("offset", [-1, 1.5, "2", None, True, 2**60])
def test_a_bad_offset_is_refused(spread, offset):
    with pytest.raises(InvalidInputError, match="offset"):
        spread.retrieve_by_time_range(AGENT, 0, N, offset=offset)
    with pytest.raises(InvalidInputError, match="offset"):
        spread.query(AGENT).between(0, 5).top(3, offset=offset)
