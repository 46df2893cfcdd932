"""One conformance suite for the tier contract in tiers/base.py.

Every test takes a ready ``tier`` (or ``make_tier`` when it needs two views of one store) and
talks to it only through the five primitives (put_many, get_many, delete_many, range, count),
so a new backend gets the whole suite by adding one case to ``TIER_CASES`` (the habit of
cachetools' CacheTestMixin and LangGraph's parametrized store fixture).

The cases: STM (RedisTier, raw payloads) and IM (RedisTier with a zstd PayloadCodec), each on
the real Redis and on the embedded fakeredis engine; LTM (SQLTier) on a SQLite file and on
PostgreSQL. The tiers are wired the way memory/_engine/agent_memory.py ``_build_tiers`` wires them.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import sqlalchemy
import zstandard

from embeddings.resolution import reduce
from tiers.base import FastTier, LongTermTier, Tier
from tiers.codec import NO_DICTIONARY, PayloadCodec, pack_contents
from tiers.dictionaries import dictionary_id
from tiers.keys import KeySchema
from tiers.ltm import SQLTier
from tiers.ltm_schema import DEFAULT_PARTITIONS, make_engine, memories
from tiers.record import MEMORY_TYPES, NO_EMBEDDINGS, Embeddings, MemoryRecord, unpack_contents
from tiers.redis_tier import RedisTier
from tiers.scripts import Scripts

NOW = 1_800_000_000.0
AGENT = "agent-a"
OTHER_AGENT = "agent_b.2"


# -- the tiers under test ---------------------------------------------------------------------


@dataclass(frozen=True)
class TierCase:
    tier: str  # "stm" | "im" | "ltm"
    # "redis" | "embedded" (the Redis engines) | "sqlite" | "postgres" (hash-partitioned, the layout a
    # new LTM gets) | "postgres-single" (one plain table: partitions=1, or a table made unpartitioned)
    backend: str

    def __str__(self) -> str:
        return f"{self.tier}-{self.backend}"


TIER_CASES = [
    TierCase("stm", "redis"),
    TierCase("stm", "embedded"),
    TierCase("im", "redis"),
    TierCase("im", "embedded"),
    TierCase("ltm", "sqlite"),
    TierCase("ltm", "postgres"),
    TierCase("ltm", "postgres-single"),
]


class DictionaryStore:
    """The codec's dictionary store for a tier tested on its own: the three callables, over a
    dict, with the content ids tiers/dictionaries.py gives (its own tests: test_deployment.py)."""

    def __init__(self) -> None:
        self.data: dict[int, bytes] = {}
        self.newest: int | None = None

    def save(self, data: bytes) -> int:
        dict_id = self.newest = dictionary_id(data)
        self.data[dict_id] = data
        return dict_id

    def load(self, dict_id: int) -> bytes | None:
        return self.data.get(dict_id)

    def latest(self) -> tuple[int, bytes] | None:
        return None if self.newest is None else (self.newest, self.data[self.newest])


@functools.cache
def trained_dictionary() -> bytes:
    """A zstd dictionary trained once per run, so IM and LTM compress with a real dictionary
    (dict_id != 0) and a fresh codec has to load it back from its store by id."""
    rng = random.Random(1)
    samples = [
        pack_contents({"position": [rng.random(), rng.random()], "health": rng.randint(0, 100), "note": f"n{i}"})
        for i in range(400)
    ]
    return zstandard.train_dictionary(4096, samples).as_bytes()


@pytest.fixture(params=TIER_CASES, ids=str)
def tier_case(request: pytest.FixtureRequest) -> TierCase:
    return request.param


@pytest.fixture
def redis_engine(tier_case: TierCase) -> str:
    """Overrides conftest's parametrized fixture: here the Redis engine is part of the tier case,
    so the LTM cases do not run twice and conftest's ``redis_client``/``prefix`` still apply."""
    assert tier_case.tier != "ltm", "LTM cases never ask for Redis"
    return tier_case.backend


@pytest.fixture
def make_tier(tier_case: TierCase, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """``make_tier(namespace_suffix="")`` builds a fresh tier object (fresh scripts, fresh codec)
    over this test's one store; two calls with one suffix are two views of the same data, two
    suffixes are two namespaces (key prefixes) sharing the store."""
    if tier_case.tier == "ltm":
        yield from _sql_tiers(tier_case, request, tmp_path)
    else:
        yield from _redis_tiers(tier_case, request)


def _redis_tiers(case: TierCase, request: pytest.FixtureRequest) -> Iterator[Callable[..., RedisTier]]:
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("prefix")  # conftest deletes its keys afterwards
    store = DictionaryStore()
    store.save(trained_dictionary())
    extra: set[str] = set()

    def build(suffix: str = "") -> RedisTier:
        if suffix:
            extra.add(prefix + suffix)
        scripts = Scripts(client)
        scripts.load()
        codec = None
        if case.tier == "im":
            codec = PayloadCodec(load_dictionary=store.load, save_dictionary=store.save, latest_dictionary=store.latest)
        return RedisTier(case.tier, client, KeySchema(prefix + suffix), scripts, codec)

    yield build
    for name in extra:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)


def _sql_tiers(case: TierCase, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., SQLTier]]:
    if case.backend == "sqlite":
        engine = make_engine(None, tmp_path / "ltm.sqlite")
    elif case.backend == "postgres":
        engine = request.getfixturevalue("postgres_engine")  # session-wide; namespaces keep tests apart
    else:
        engine = request.getfixturevalue("private_postgres_engine")  # its table is made unpartitioned
    partitions = 1 if case.backend == "postgres-single" else DEFAULT_PARTITIONS
    base = f"t{uuid.uuid4().hex[:12]}"
    used: set[str] = set()
    store = DictionaryStore()
    store.save(trained_dictionary())

    def build(suffix: str = "") -> SQLTier:
        used.add(base + suffix)
        ltm = SQLTier(engine, namespace=base + suffix, partitions=partitions)
        assert ltm.partitions == (partitions if case.backend != "sqlite" else 1)
        ltm.codec = PayloadCodec(load_dictionary=store.load, save_dictionary=store.save, latest_dictionary=store.latest)
        return ltm

    yield build
    if case.backend == "sqlite":
        engine.dispose()
    else:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.delete(memories).where(memories.c.namespace.in_(sorted(used))))


@pytest.fixture
def tier(make_tier: Callable[..., Any]) -> Any:
    return make_tier()


# -- records and the reference model ------------------------------------------------------------


def vector(*values: float) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def make_record(
    memory_id: str,
    step: int,
    *,
    agent_id: str = AGENT,
    memory_type: str = "state",
    importance: float = 0.5,
    contents: Any = None,
    timestamp: float | None = None,
    embeddings: Embeddings = NO_EMBEDDINGS,
    position: tuple[float, ...] | None = None,
) -> MemoryRecord:
    if contents is None:
        contents = {"id": memory_id, "step": step}
    return MemoryRecord(
        memory_id=memory_id,
        agent_id=agent_id,
        step_number=step,
        memory_type=memory_type,
        timestamp=NOW + step / 8 if timestamp is None else timestamp,
        importance_score=importance,
        contents_blob=pack_contents(contents),
        embeddings=embeddings,
        position=position,
    )


def view(record: MemoryRecord) -> tuple:
    """What the contract promises to keep: everything but tier-local access statistics.
    Contents are compared as their exact msgpack bytes, so 1 vs 1.0 vs True would differ."""
    return (
        record.memory_id,
        record.agent_id,
        record.step_number,
        record.memory_type,
        record.timestamp,
        record.importance_score,
        record.contents_blob,
        record.embeddings,
    )


def views(records: Sequence[MemoryRecord]) -> list[tuple]:
    return [view(r) for r in records]


def by_id(records: Sequence[MemoryRecord]) -> dict[str, tuple]:
    return {r.memory_id: view(r) for r in records}


def ids(records: Sequence[MemoryRecord]) -> list[str]:
    return [r.memory_id for r in records]


def expected_range(
    records: Sequence[MemoryRecord],
    *,
    by: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    memory_type: str | None = None,
    reverse: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> list[MemoryRecord]:
    """The contract's range, written plainly: filter, sort by (index value, memory_id), slice."""

    def key(r: MemoryRecord) -> float:
        return r.step_number if by == "step" else r.importance_score

    chosen = [
        r
        for r in records
        if (memory_type is None or r.memory_type == memory_type)
        and (lo is None or key(r) >= lo)
        and (hi is None or key(r) <= hi)
    ]
    chosen.sort(key=lambda r: (key(r), r.memory_id), reverse=reverse)
    chosen = chosen[offset:]
    return chosen if limit is None else chosen[:limit]


def sample_records() -> list[MemoryRecord]:
    """Twelve records over steps 1..6 (two per step), all three types, importance with ties."""
    records = []
    for i in range(12):
        step = 1 + i // 2
        records.append(
            make_record(
                f"m{i:02d}",
                step,
                memory_type=MEMORY_TYPES[i % 3],
                importance=[0.25, 0.5, 0.75, 0.5][i % 4],
            )
        )
    return records


# -- put / get ------------------------------------------------------------------------------------


RICH_CONTENTS = [
    {"nested": {"deeper": {"list": [1, [2, [3, {"x": None}]]], "empty": {}}}, "flag": True, "off": False},
    {"unicode": "héllo wörld ✓ 日本語 🚀", "emoji_key_✓": "value", "": "empty key"},
    {"bytes": b"\x00\x01\xffbinary", "big": 2**40 + 7, "bigger": 2**63 - 1, "negative": -(2**41)},
    {"floats": [0.1, 1 / 3, -2.5e-300, 1.7976931348623157e308, float("inf"), -0.0], "int_key": {1: "one", 2: [2]}},
    [1, "two", 3.0, None, True, b"four", {"five": 5}],
    "just a string",
    None,
]


def test_put_then_get_returns_exactly_what_was_put(tier: Any) -> None:
    records = [
        make_record(
            f"rich-{i}",
            step=2**41 + i if i % 2 else i,
            memory_type=MEMORY_TYPES[i % 3],
            importance=[0.0, 1.0, 1 / 3, 0.1, 123.456, 1e-9, 0.5][i],
            timestamp=NOW + i + 0.123456789,
            contents=contents,
            embeddings=Embeddings(full_vector=vector(i, 0.5, -1.25)) if i % 3 == 0 else NO_EMBEDDINGS,
        )
        for i, contents in enumerate(RICH_CONTENTS)
    ]
    tier.put_many(AGENT, records, NOW)

    got = tier.get_many(AGENT, ids(records))
    assert by_id(got) == by_id(records)
    for record, original in zip(sorted(got, key=lambda r: r.memory_id), sorted(records, key=lambda r: r.memory_id)):
        assert record.contents == original.contents
        assert type(record.step_number) is int and type(record.importance_score) is float
        assert record.tier == tier.name
    assert tier.count(AGENT) == len(records)


def test_get_of_unknown_ids_returns_nothing(tier: Any) -> None:
    assert tier.get_many(AGENT, ["nope"]) == []
    records = sample_records()
    tier.put_many(AGENT, records, NOW)
    assert tier.get_many(AGENT, ["nope", "m99", "M00"]) == []
    got = tier.get_many(AGENT, ["nope", "m03", "also-nope", "m07"])
    assert sorted(ids(got)) == ["m03", "m07"]


def test_get_many_returns_each_held_record_once(tier: Any) -> None:
    """The contract answers with "the records among memory_ids", a set of records: asking for an
    id twice must not return (or, with ``now``, count) its record twice."""
    tier.put_many(AGENT, sample_records(), NOW)
    got = tier.get_many(AGENT, ["m01", "m01", "m02", "m01"])
    assert sorted(ids(got)) == ["m01", "m02"]


def test_put_is_an_upsert(tier: Any) -> None:
    record = make_record("same", 4, importance=0.3)
    tier.put_many(AGENT, [record], NOW)
    tier.put_many(AGENT, [record], NOW + 1)
    tier.put_many(AGENT, [record, record], NOW + 2)
    assert tier.count(AGENT) == 1
    assert views(tier.get_many(AGENT, ["same"])) == [view(record)]
    assert ids(tier.range(AGENT)) == ["same"]


def test_upsert_with_a_new_importance_moves_the_record_in_the_importance_order(tier: Any) -> None:
    """Moves between tiers re-put a memory with its decayed importance; the new score must be the
    one every read sees, and the old one must leave the importance index."""
    records = [make_record(f"u{i}", i, importance=float(i)) for i in range(5)]
    tier.put_many(AGENT, records, NOW)
    lowered = records[4]._replace(importance_score=0.5)
    tier.put_many(AGENT, [lowered], NOW + 1)

    assert views(tier.get_many(AGENT, ["u4"])) == [view(lowered)]
    assert ids(tier.range(AGENT, by="importance", reverse=True)) == ["u3", "u2", "u1", "u4", "u0"]
    assert tier.range(AGENT, by="importance", lo=3.5) == []
    assert tier.count(AGENT) == 5


def test_empty_batches_are_harmless(tier: Any) -> None:
    """Callers batch by agent and by size; an empty batch must be a no-op in every tier."""
    tier.put_many(AGENT, [], NOW)
    assert tier.get_many(AGENT, []) == []
    assert tier.delete_many(AGENT, []) == 0
    assert tier.count(AGENT) == 0
    assert tier.range(AGENT) == []


# -- delete ---------------------------------------------------------------------------------------


def test_delete_many_returns_how_many_were_removed(tier: Any) -> None:
    records = sample_records()
    tier.put_many(AGENT, records, NOW)

    assert tier.delete_many(AGENT, ["m01", "m04", "unknown", "m04"]) == 2
    assert tier.delete_many(AGENT, ["m01", "m04"]) == 0
    assert tier.delete_many(AGENT, ["unknown"]) == 0

    left = [r for r in records if r.memory_id not in ("m01", "m04")]
    assert tier.get_many(AGENT, ["m01", "m04"]) == []
    assert tier.count(AGENT) == 10
    assert views(tier.range(AGENT)) == views(expected_range(left))
    assert views(tier.range(AGENT, by="importance", reverse=True)) == views(
        expected_range(left, by="importance", reverse=True)
    )
    for memory_type in MEMORY_TYPES:
        for by in ("step", "importance"):
            assert ids(tier.range(AGENT, by=by, memory_type=memory_type)) == ids(
                expected_range(left, by=by, memory_type=memory_type)
            )


def test_deleted_then_put_again_is_back(tier: Any) -> None:
    record = make_record("phoenix", 3, memory_type="action")
    tier.put_many(AGENT, [record], NOW)
    assert tier.delete_many(AGENT, ["phoenix"]) == 1
    tier.put_many(AGENT, [record], NOW)
    assert views(tier.range(AGENT, memory_type="action")) == [view(record)]
    assert tier.count(AGENT) == 1


# -- range ---------------------------------------------------------------------------------------


def test_range_by_step_with_inclusive_bounds(tier: Any) -> None:
    tier.put_many(AGENT, sample_records(), NOW)

    assert ids(tier.range(AGENT, by="step", lo=2, hi=4)) == ["m02", "m03", "m04", "m05", "m06", "m07"]
    assert ids(tier.range(AGENT, by="step", lo=2, hi=4, reverse=True)) == ["m07", "m06", "m05", "m04", "m03", "m02"]
    assert ids(tier.range(AGENT, lo=5)) == ["m08", "m09", "m10", "m11"]
    assert ids(tier.range(AGENT, hi=1)) == ["m00", "m01"]
    assert ids(tier.range(AGENT, lo=3, hi=3)) == ["m04", "m05"]
    assert ids(tier.range(AGENT, lo=2.5, hi=3.5)) == ["m04", "m05"]
    assert tier.range(AGENT, lo=4, hi=3) == []
    assert tier.range(AGENT, lo=7) == []
    assert len(tier.range(AGENT)) == 12


def test_range_by_step_with_type_offset_and_limit(tier: Any) -> None:
    records = sample_records()
    tier.put_many(AGENT, records, NOW)

    # types cycle state, action, interaction over m00..m11
    assert ids(tier.range(AGENT, memory_type="action")) == ["m01", "m04", "m07", "m10"]
    assert ids(tier.range(AGENT, memory_type="action", reverse=True)) == ["m10", "m07", "m04", "m01"]
    assert ids(tier.range(AGENT, memory_type="state", lo=2, hi=5)) == ["m03", "m06", "m09"]
    assert ids(tier.range(AGENT, offset=3, limit=4)) == ["m03", "m04", "m05", "m06"]
    assert ids(tier.range(AGENT, reverse=True, offset=1, limit=2)) == ["m10", "m09"]
    assert ids(tier.range(AGENT, memory_type="interaction", offset=1, limit=2)) == ["m05", "m08"]
    assert ids(tier.range(AGENT, memory_type="interaction", reverse=True, offset=3)) == ["m02"]
    assert ids(tier.range(AGENT, lo=2, hi=5, offset=6)) == ["m08", "m09"]
    assert tier.range(AGENT, offset=12) == []
    assert tier.range(AGENT, limit=0) == []
    assert tier.range(AGENT, memory_type="action", limit=0) == []

    for query in [
        {"memory_type": "state", "reverse": True, "offset": 1, "limit": 2},
        {"lo": 3, "memory_type": "interaction", "limit": 1},
        {"hi": 4, "reverse": True, "offset": 2},
    ]:
        assert views(tier.range(AGENT, **query)) == views(expected_range(records, **query)), query


def test_range_by_importance(tier: Any) -> None:
    records = sample_records()
    tier.put_many(AGENT, records, NOW)
    # importance cycles 0.25, 0.5, 0.75, 0.5 over m00..m11; ties order by memory_id
    assert ids(tier.range(AGENT, by="importance", reverse=True, limit=5)) == ["m10", "m06", "m02", "m11", "m09"]
    assert ids(tier.range(AGENT, by="importance", lo=0.5, hi=0.5)) == ["m01", "m03", "m05", "m07", "m09", "m11"]
    assert ids(tier.range(AGENT, by="importance", hi=0.25)) == ["m00", "m04", "m08"]
    assert ids(tier.range(AGENT, by="importance", memory_type="action", reverse=True)) == ["m10", "m07", "m01", "m04"]
    assert ids(tier.range(AGENT, by="importance", memory_type="state", lo=0.5)) == ["m03", "m09", "m06"]
    assert ids(tier.range(AGENT, by="importance", memory_type="state", reverse=True, offset=1, limit=2)) == [
        "m09",
        "m03",
    ]
    assert tier.range(AGENT, by="importance", lo=0.8) == []

    for query in [
        {"reverse": True},
        {"memory_type": "interaction", "reverse": True, "offset": 1},
        {"lo": 0.3, "hi": 0.7, "reverse": True, "limit": 4},
    ]:
        assert views(tier.range(AGENT, by="importance", **query)) == views(
            expected_range(records, by="importance", **query)
        ), query


def test_equal_index_values_come_back_in_memory_id_order(tier: Any) -> None:
    """Ties break on memory_id by byte order in every tier (the cross-tier merge relies on it):
    ids differing in case and punctuation, put in a shuffled order, all on one step."""
    names = ["a-2", "a10", "a_1", "a.3", "A1", "b", "Z", "a", "a-10", "0", "m~", "M-1"]
    random.Random(3).shuffle(names)
    records = [make_record(name, 7, importance=0.5, memory_type="state") for name in names]
    tier.put_many(AGENT, records, NOW)
    ascending = sorted(names)  # str order == UTF-8 byte order

    assert ids(tier.range(AGENT)) == ascending
    assert ids(tier.range(AGENT, reverse=True)) == ascending[::-1]
    assert ids(tier.range(AGENT, memory_type="state", reverse=True)) == ascending[::-1]
    assert ids(tier.range(AGENT, by="importance")) == ascending
    assert ids(tier.range(AGENT, by="importance", reverse=True)) == ascending[::-1]
    assert ids(tier.range(AGENT, by="importance", memory_type="state", reverse=True, offset=2, limit=3)) == (
        ascending[::-1][2:5]
    )


# -- isolation ------------------------------------------------------------------------------------


def test_agents_are_isolated(tier: Any) -> None:
    mine = [make_record(f"{AGENT}-{i}", i, importance=0.9, memory_type="action") for i in range(6)]
    theirs = [make_record(f"{OTHER_AGENT}-{i}", i, agent_id=OTHER_AGENT, importance=0.1) for i in range(4)]
    tier.put_many(AGENT, mine, NOW)
    tier.put_many(OTHER_AGENT, theirs, NOW)

    assert tier.count(AGENT) == 6 and tier.count(OTHER_AGENT) == 4
    assert views(tier.range(OTHER_AGENT)) == views(theirs)
    assert tier.range(OTHER_AGENT, memory_type="action") == []
    assert views(tier.range(OTHER_AGENT, by="importance", reverse=True)) == views(theirs[::-1])
    assert tier.get_many(OTHER_AGENT, ids(mine)) == []
    assert tier.delete_many(OTHER_AGENT, ids(mine)) == 0
    assert tier.count(AGENT) == 6
    assert tier.delete_many(AGENT, ids(mine)) == 6
    assert views(tier.range(OTHER_AGENT)) == views(theirs)
    assert tier.count("agent-never-seen") == 0 and tier.range("agent-never-seen") == []


def test_namespaces_sharing_one_store_are_isolated(make_tier: Callable[..., Any]) -> None:
    """Two engines with different key prefixes on one Redis or one LTM database, using the same
    agent and the same memory ids, never see each other's records."""
    first, second = make_tier(), make_tier(".other")
    ours = [make_record(f"m{i}", i, contents={"owner": "first"}) for i in range(5)]
    others = [make_record(f"m{i}", i + 10, contents={"owner": "second"}, importance=0.9) for i in range(3)]
    first.put_many(AGENT, ours, NOW)
    second.put_many(AGENT, others, NOW)

    assert first.count(AGENT) == 5 and second.count(AGENT) == 3
    assert views(first.range(AGENT)) == views(ours)
    assert views(second.range(AGENT)) == views(others)
    assert by_id(first.get_many(AGENT, ["m0", "m1", "m2"])) == by_id(ours[:3])
    assert second.delete_many(AGENT, ["m0", "m1", "m2", "m3", "m4"]) == 3
    assert views(first.range(AGENT)) == views(ours)
    assert second.count(AGENT) == 0


def test_a_fresh_tier_object_reads_what_another_wrote(make_tier: Callable[..., Any]) -> None:
    """Another process opening the same store (new scripts, new codec that must fetch the
    compression dictionary by id) reads every record back unchanged."""
    records = [make_record(f"p{i}", i, contents=RICH_CONTENTS[i % len(RICH_CONTENTS)]) for i in range(20)]
    make_tier().put_many(AGENT, records, NOW)
    reader = make_tier()
    assert views(reader.range(AGENT)) == views(records)
    assert by_id(reader.get_many(AGENT, ids(records))) == by_id(records)


def test_payloads_use_the_trained_dictionary(make_tier: Callable[..., Any], tier_case: TierCase) -> None:
    """IM and LTM compress with the dictionary their store holds, so the dictionary path is the
    one the suite exercises (STM keeps raw payloads and has no codec)."""
    tier = make_tier()
    tier.put_many(AGENT, [make_record("d", 1)], NOW)
    if tier_case.tier == "stm":
        assert tier.codec is None
    else:
        assert tier.codec.current != NO_DICTIONARY


# -- embeddings and size ------------------------------------------------------------------------


def test_embeddings_and_positions_round_trip(tier: Any) -> None:
    rng = np.random.default_rng(5)
    unit = rng.standard_normal((1, 384)).astype(np.float32)
    unit /= np.linalg.norm(unit)
    full, compressed, abstract = (reduce(unit, resolution)[0] for resolution in ("full", "compressed", "abstract"))
    records = [
        make_record("e-all", 1, embeddings=Embeddings(full, compressed, abstract, "compressed", compressed)),
        make_record("e-full", 2, embeddings=Embeddings(full_vector=full), position=(1.5, -2.0)),
        make_record("e-abstract", 3, embeddings=Embeddings(abstract_vector=abstract), position=(0.0, 1e9, -3.25)),
        make_record("e-text-only", 4, embeddings=Embeddings(text_resolution="full", text_vector=full)),
        make_record("e-none", 5),
    ]
    tier.put_many(AGENT, records, NOW)

    got = by_id(tier.get_many(AGENT, ids(records)))
    assert got == by_id(records)
    for record in tier.range(AGENT):
        original = next(r for r in records if r.memory_id == record.memory_id)
        assert record.embeddings == original.embeddings
        assert record.embeddings.to_dict() == original.embeddings.to_dict()
    assert np.array_equal(
        np.frombuffer(tier.get_many(AGENT, ["e-full"])[0].embeddings.full_vector, dtype=np.float32), unit[0]
    )
    assert tier.get_many(AGENT, ["e-abstract"])[0].position == (0.0, 1e9, -3.25)
    assert tier.get_many(AGENT, ["e-none"])[0].position is None
    as_dict = tier.get_many(AGENT, ["e-all"])[0].embeddings.to_dict()
    assert np.allclose(as_dict["compressed_vector"], unit[0], atol=1e-3)
    assert np.allclose(as_dict["abstract_vector"], unit[0], atol=0.01)


def test_every_tier_keeps_the_tier_protocol(tier: Any, tier_case: TierCase) -> None:
    """The shared contract, and what the tier set uses of its kind (tiers/base.py)."""
    assert isinstance(tier, Tier)
    assert isinstance(tier, LongTermTier if tier_case.tier == "ltm" else FastTier)


def test_held_and_count_name_what_the_tier_holds(tier: Any) -> None:
    tier.put_many(AGENT, [make_record(f"h{i}", i) for i in range(6)], NOW)
    tier.delete_many(AGENT, ["h2"])
    assert tier.held(AGENT, ["h1", "h2", "h5", "h1", "nope"]) == {"h1", "h5"}
    assert tier.held(AGENT, []) == set() and tier.held("someone-else", ["h1"]) == set()
    assert tier.count(AGENT) == 5


def test_derived_rows_are_what_the_indices_need(tier: Any) -> None:
    """Derived fields and the contents as msgpack bytes (the attribute index reads them;
    compressed tiers give them back decompressed)."""
    rng = np.random.default_rng(9)
    unit = rng.standard_normal((1, 32)).astype(np.float32)
    unit /= np.linalg.norm(unit)
    vector = reduce(unit, "full")[0]
    records = [make_record("d0", 3, memory_type="action", importance=0.25, position=(1.0, 2.0),
                           embeddings=Embeddings(full_vector=vector)),
               make_record("d1", 4), make_record("d2", 5, memory_type="interaction", importance=0.75)]
    tier.put_many(AGENT, records, NOW)

    def rows(memory_ids: Any = None) -> dict[str, tuple]:
        return {row[0]: row[1:] for chunk in tier.derived(AGENT, memory_ids) for row in chunk}

    every = rows()
    assert set(every) == {"d0", "d1", "d2"}
    step, memory_type, importance, embeddings, position, contents = every["d0"]
    assert (step, memory_type, importance, position) == (3, "action", 0.25, (1.0, 2.0))
    assert unpack_contents(contents) == records[0].contents
    assert embeddings.state is not None and every["d1"][3].state is None and every["d2"][1:3] == ("interaction", 0.75)
    assert set(rows(["d2", "gone"])) == {"d2"}


@pytest.mark.parametrize("tier_case", [case for case in TIER_CASES if case.tier == "ltm"], indirect=True, ids=str)
def test_ltm_queues_what_waits_for_a_text_vector(tier: Any) -> None:
    """LTM's own text-embedding queue (Redis's holds STM and IM only): rows put as waiting come
    back lowest step first, a vector written takes a row off, another put of it decides again."""
    tier.put_many(AGENT, [make_record(f"w{i}", i) for i in range(6)], NOW, text_pending={"w4", "w1", "w5"})
    assert tier.text_pending(AGENT, 2) == ["w1", "w4"]
    assert sorted(tier.text_pending(AGENT, among=["w0", "w5", "w4", "nope"])) == ["w4", "w5"]
    tier.set_embeddings(AGENT, {"w4": Embeddings(text_resolution="abstract", text_vector=b"\x01" * 8)})
    assert tier.text_pending(AGENT, 10) == ["w1", "w5"]
    tier.put_many(AGENT, [make_record("w1", 1)], NOW)
    assert tier.text_pending(AGENT, 10) == ["w5"] and tier.text_pending("someone-else", 10) == []


def test_a_large_batch_in_one_put(tier: Any) -> None:
    """5,000 records in one put_many: more values than one Lua unpack() takes, so the scripts'
    chunking is on the path; the SQL tiers chunk their IN lists."""
    n = 5000
    records = [
        make_record(f"big-{i:05d}", i // 3, memory_type=MEMORY_TYPES[i % 3], importance=(i % 17) / 16)
        for i in range(n)
    ]
    tier.put_many(AGENT, records, NOW)

    assert tier.count(AGENT) == n
    assert ids(tier.range(AGENT)) == ids(expected_range(records))
    assert ids(tier.range(AGENT, by="importance", reverse=True, memory_type="action", limit=50)) == ids(
        expected_range(records, by="importance", reverse=True, memory_type="action", limit=50)
    )
    assert by_id(tier.get_many(AGENT, ids(records))) == by_id(records)
    assert tier.delete_many(AGENT, ids(records[::2])) == n // 2
    assert tier.count(AGENT) == n // 2
    assert ids(tier.range(AGENT, reverse=True)) == ids(expected_range(records[1::2], reverse=True))
    assert tier.delete_many(AGENT, ids(records)) == n // 2
    assert tier.count(AGENT) == 0


# -- seeded random operations against a dict model ---------------------------------------------------


class Model:
    """The contract as a plain dict per agent: what every tier must answer."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, MemoryRecord]] = {}

    def put(self, agent_id: str, records: Sequence[MemoryRecord]) -> None:
        self.agents.setdefault(agent_id, {}).update((r.memory_id, r) for r in records)

    def delete(self, agent_id: str, memory_ids: Sequence[str]) -> int:
        held = self.agents.get(agent_id, {})
        return sum(held.pop(memory_id, None) is not None for memory_id in set(memory_ids))

    def get(self, agent_id: str, memory_ids: Sequence[str]) -> dict[str, tuple]:
        held = self.agents.get(agent_id, {})
        return {m: view(held[m]) for m in memory_ids if m in held}

    def range(self, agent_id: str, **query: Any) -> list[tuple]:
        return views(expected_range(list(self.agents.get(agent_id, {}).values()), **query))

    def count(self, agent_id: str) -> int:
        return len(self.agents.get(agent_id, {}))


def random_query(rng: random.Random) -> dict[str, Any]:
    """Bounds drawn from the value grids the records use, so inclusive edges and ties are hit."""
    by = rng.choice(["step", "importance"])
    grid = range(0, 25) if by == "step" else [k / 8 for k in range(9)]
    query: dict[str, Any] = {"by": by}
    if rng.random() < 0.6:
        query["lo"] = rng.choice(grid)
    if rng.random() < 0.6:
        query["hi"] = rng.choice(grid)
    if rng.random() < 0.4:
        query["memory_type"] = rng.choice(MEMORY_TYPES)
    if rng.random() < 0.5:
        query["reverse"] = True
    if rng.random() < 0.3:
        query["offset"] = rng.randint(0, 15)
    if rng.random() < 0.5:
        query["limit"] = rng.randint(0, 20)
    return query


@pytest.mark.parametrize("seed", [11, 2024])
def test_random_operations_match_a_dict_model(tier: Any, seed: int) -> None:
    """Seeded random puts (new memories and re-puts with a new importance), deletes, gets and
    ranges on two agents; every answer must equal the model's, in the model's order."""
    rng = random.Random(seed)
    model = Model()
    agents = [AGENT, OTHER_AGENT]
    ever: dict[str, dict[str, MemoryRecord]] = {a: {} for a in agents}  # every memory created, held or not
    serial = 0

    for op in range(300):
        agent = rng.choice(agents)
        choice = rng.random()
        if choice < 0.35:
            batch = []
            for _ in range(rng.randint(1, 12)):
                if ever[agent] and rng.random() < 0.3:
                    # a memory's step, type and contents never change; a re-put may carry a new importance
                    old = rng.choice(list(ever[agent].values()))
                    record = old._replace(importance_score=rng.randint(0, 8) / 8)
                else:
                    serial += 1
                    record = make_record(
                        f"{agent}-{rng.choice('abAB_-')}{serial:04d}",
                        rng.randint(0, 24),
                        agent_id=agent,
                        memory_type=rng.choice(MEMORY_TYPES),
                        importance=rng.randint(0, 8) / 8,
                        contents={"serial": serial, "agent": agent, "r": rng.random(), "b": rng.randbytes(4)},
                        embeddings=Embeddings(vector(rng.random(), serial)) if serial % 4 else NO_EMBEDDINGS,
                    )
                ever[agent][record.memory_id] = record
                batch.append(record)
            tier.put_many(agent, batch, NOW + op)
            model.put(agent, batch)
        elif choice < 0.5 and ever[agent]:
            victims = rng.sample(list(ever[agent]), min(len(ever[agent]), rng.randint(1, 8))) + ["missing"]
            assert tier.delete_many(agent, victims) == model.delete(agent, victims), f"op {op}"
        elif choice < 0.6 and ever[agent]:
            wanted = rng.sample(list(ever[agent]), min(len(ever[agent]), rng.randint(1, 10))) + ["missing"]
            assert by_id(tier.get_many(agent, wanted)) == model.get(agent, wanted), f"op {op}"
        else:
            query = random_query(rng)
            assert views(tier.range(agent, **query)) == model.range(agent, **query), f"op {op}: {query}"
        assert tier.count(agent) == model.count(agent), f"op {op}"

    for agent in agents:
        assert views(tier.range(agent)) == model.range(agent)
        query = {"by": "importance", "reverse": True}
        assert views(tier.range(agent, **query)) == model.range(agent, **query)
