"""Invariant 9: a Redis key prefix and an LTM are one deployment.

Two engines in different data directories on one prefix of one Redis either share the truth (they
name the same LTM: one SQLite file, one PostgreSQL schema) or the second is refused with a
MemoryConfigException naming both LTMs, before it reads or writes: never a payload decoded with
another deployment's dictionary. An LTM file deleted under a Redis that still holds IM is refused
or reported with a typed error, never answered with garbage.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from fault_support import WHOLE_RANGE, every_query_kind
from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from support import TEST_POSTGRES_URL, TEST_REDIS_URL, real_redis, unavailable
from tiers.errors import MemoryAPIException, MemoryConfigException

pytestmark = pytest.mark.slow

STORED = 150
LIMITS = {
    "cleanup_interval": 1_000_000,
    "stm_config": {"memory_limit": 20},
    "im_config": {"memory_limit": 40},
    "ltm_config": {"dictionary_samples": 50},  # a trained dictionary early: IM and LTM payloads use it
    "search_config": {"text_embedding": "off", "state_vectors": True},
}
ATTRIBUTES = {"probe.run": "two"}


def contents(agent_id: str, i: int, rng: random.Random) -> dict[str, Any]:
    return {"probe": {"run": "two", "agent": agent_id, "i": i}, "position": [rng.uniform(0, 50), rng.uniform(0, 50)],
            "inventory": {"wood": rng.randint(0, 9), "tools": ["axe", "saw"][: i % 3]},
            "mood": rng.choice(["calm", "alert", None]), "note": "the quick brown fox " * (i % 9)}


def fill(api: AgentMemoryAPI, agent_id: str, seed: int) -> dict[str, dict[str, Any]]:
    """150 memories of ``agent_id``, maintained into STM, IM and LTM; memory id -> contents."""
    rng = random.Random(seed)
    items = [{"agent_id": agent_id, "data": contents(agent_id, i, rng), "step_number": i} for i in range(STORED)]
    stored = dict(zip(api.store_many(items), (item["data"] for item in items)))
    report = api.force_memory_maintenance(agent_id)
    assert report.im_to_ltm > 0, report
    return stored


def reads_back(api: AgentMemoryAPI, agent_id: str, stored: dict[str, dict[str, Any]]) -> None:
    """``api`` finds every memory of ``stored`` with the contents it was stored with, in every tier."""
    answer = api.retrieve_by_time_range(agent_id, *WHOLE_RANGE)
    assert sorted(m["memory_id"] for m in answer) == sorted(stored)
    assert {m["tier"] for m in answer} == {"stm", "im", "ltm"}
    for memory in answer:
        assert memory["contents"] == stored[memory["memory_id"]], f"{memory['memory_id']} read back changed"
    for memory_id, expected in stored.items():
        got = api.get_memory(agent_id, memory_id)
        assert got is not None and got["contents"] == expected
    found = every_query_kind(api, agent_id, ATTRIBUTES, next(iter(stored.values())))
    for kind, ids in found.items():
        assert sorted(ids) == sorted(stored), f"{kind} does not find exactly the stored memories"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A prefix on the shared test Redis; its keys are deleted afterwards."""
    name = f"two{uuid.uuid4().hex[:10]}"
    yield name
    client = real_redis()
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


def engine(prefix: str, data_dir: Path, **ltm: Any) -> AgentMemoryAPI:
    options = {**LIMITS, "ltm_config": {**LIMITS["ltm_config"], **ltm.pop("ltm_config", {})}}
    return AgentMemoryAPI(MemoryConfig(redis_url=TEST_REDIS_URL, key_prefix=prefix, data_dir=str(data_dir), **options),
                          **ltm)


def redis_state(prefix: str) -> dict[bytes, bytes]:
    """Every key under the prefix with its DUMP: what a refused engine must leave as it was."""
    client = real_redis()
    try:
        return {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}*", count=1000)}
    finally:
        client.close()


def what_follows(first: AgentMemoryAPI, second: AgentMemoryAPI, stored: dict[str, dict[str, Any]]) -> list[str]:
    """With both engines running, what goes wrong: each engine storing, maintaining and reading
    the other's memories; the errors raised and the contents that came back changed."""
    seen = []

    def attempt(what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the point is to list whatever happens
            seen.append(f"{what}: {type(exc).__name__}: {exc}")
            return None

    theirs = attempt("the second engine fills its own agent", lambda: fill(second, "beta", 2)) or {}
    for who, api, agent, expected in (("second", second, "alpha", stored), ("first", first, "beta", theirs)):
        answer = attempt(f"the {who} engine reads {agent}",
                         lambda api=api, agent=agent: api.retrieve_by_time_range(agent, *WHOLE_RANGE))
        for memory in answer or []:
            if memory["contents"] != expected.get(memory["memory_id"]):
                seen.append(f"the {who} engine read {memory['memory_id']} ({memory['tier']}) with other contents")
                break
    return seen


def test_a_second_engine_with_another_ltm_on_the_prefix_is_refused_before_it_reads_or_writes(prefix, tmp_path):
    with engine(prefix, tmp_path / "a") as first:
        stored = fill(first, "alpha", 1)
        before = redis_state(prefix)
        try:
            second = engine(prefix, tmp_path / "b")
        except MemoryConfigException as refused:
            message = str(refused)
            for ltm in (tmp_path / "a" / "ltm.sqlite", tmp_path / "b" / "ltm.sqlite"):
                assert str(ltm) in message, f"the refusal does not name {ltm}: {message}"
            assert redis_state(prefix) == before, "the refused engine changed Redis"
            reads_back(first, "alpha", stored)
            return
        with second:
            followed = what_follows(first, second, stored)
        pytest.fail("a second engine with another LTM (b/ltm.sqlite) on the prefix of a/ltm.sqlite was not refused; "
                    "then: " + ("; ".join(followed) or "nothing visibly broke"))


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_ltm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], dict[str, Any]]]:
    """Engine options naming one LTM: a SQLite file both data directories point at, or one
    PostgreSQL schema (an SQLAlchemy engine each, as two processes would have)."""
    if request.param == "sqlite-file":
        path = str(tmp_path / "shared-ltm.sqlite")
        yield lambda: {"ltm_config": {"db_path": path}}
        return
    schema = f"tiermem_two_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(TEST_POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any driver or connection failure means "not here"
        admin.dispose()
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}", exc)
    engines: list[sqlalchemy.engine.Engine] = []

    def options() -> dict[str, Any]:
        made = sqlalchemy.create_engine(TEST_POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
        engines.append(made)
        return {"ltm_engine": made}

    yield options
    for made in engines:
        made.dispose()
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_two_engines_naming_one_ltm_share_the_truth(prefix, tmp_path, shared_ltm):
    with engine(prefix, tmp_path / "a", **shared_ltm()) as first:
        with engine(prefix, tmp_path / "b", **shared_ltm()) as second:
            alpha = fill(first, "alpha", 1)
            reads_back(second, "alpha", alpha)
            beta = fill(second, "beta", 2)
            reads_back(first, "beta", beta)
            reads_back(first, "alpha", alpha)


def test_an_ltm_file_deleted_under_a_redis_that_keeps_im_is_refused_or_reported(prefix, tmp_path):
    with engine(prefix, tmp_path / "a") as first:
        stored = fill(first, "alpha", 1)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "a" / f"ltm.sqlite{suffix}").unlink(missing_ok=True)

    try:
        again = engine(prefix, tmp_path / "a")
    except MemoryConfigException as refused:
        assert "ltm.sqlite" in str(refused), f"the refusal does not name the LTM: {refused}"
        return
    reported, garbage = [], []
    with again:
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("queries", lambda: every_query_kind(again, "alpha", ATTRIBUTES, next(iter(stored.values())))),
            ("time range", lambda: again.retrieve_by_time_range("alpha", *WHOLE_RANGE)),
        ]
        calls += [(f"get_memory {mid}", lambda mid=mid: again.get_memory("alpha", mid)) for mid in stored]
        for what, call in calls:
            try:
                answer = call()
            except MemoryAPIException as exc:
                reported.append(f"{what}: {type(exc).__name__}")
                continue
            except Exception as exc:  # noqa: BLE001 - an untyped error is what the test looks for
                garbage.append(f"{what} raised an untyped {type(exc).__name__}: {exc}")
                continue
            memories = answer if isinstance(answer, list) else [answer] if isinstance(answer, dict) else []
            garbage += [f"{what} returned {m['memory_id']} with other contents" for m in memories
                        if m["contents"] != stored.get(m["memory_id"])]
    assert not garbage, "\n".join(garbage[:10])
    assert reported, "the engine opened on a Redis whose LTM is gone, and no read reported the lost memories"
