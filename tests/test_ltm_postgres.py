"""The long-term tier on PostgreSQL, beyond the tier suite (test_tier_conformance.py runs that on
both layouts): what its driver-level paths (a batch of new rows as one COPY, a range read as
binary rows) do when PostgreSQL refuses a batch or ends the session, the sessions of the engine
made for an LTM URL, and several processes storing and maintaining through one fresh PostgreSQL
schema (invariants 1 and 5: nothing lost, nothing twice)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from fault_support import WHOLE_RANGE
from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from support import TEST_POSTGRES_URL, TEST_REDIS_URL, postgres_schema, real_redis, unavailable
from team_support import FORK, delete_prefix
from tiers.codec import PayloadCodec, pack_contents
from tiers.errors import TierUnavailableError
from tiers.ltm import SQLTier
from tiers.ltm_schema import make_engine
from tiers.record import MemoryRecord


def _record(memory_id: str, step: int, memory_type: str = "state") -> MemoryRecord:
    return MemoryRecord(memory_id, "a", step, memory_type, 1.0, 0.5, pack_contents({"step": step}))


def test_a_batch_postgresql_refuses_is_a_tier_error_and_nothing_of_it_is_kept(private_postgres_engine):
    """A COPY refused by PostgreSQL (a value too long for its column) raises TierUnavailableError,
    not the driver's error; none of the batch is stored, and the next batch goes in."""
    ltm = SQLTier(private_postgres_engine, "refused")
    ltm.codec = PayloadCodec()
    try:
        ltm.put_many("a", [_record("m1", 1)])
        try:
            ltm.put_many("a", [_record("m2", 2), _record("m3", 3, memory_type="x" * 40)])
        except TierUnavailableError as exc:
            assert "value too long" in str(exc), exc
        else:
            raise AssertionError("a row PostgreSQL cannot hold was accepted")
        ltm.put_many("a", [_record("m2", 2), _record("m4", 4)])
        assert [r.memory_id for r in ltm.range("a")] == ["m1", "m2", "m4"]
        with private_postgres_engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM tiermem_ltm")).scalar() == 3
    finally:
        ltm.close()


def test_the_ltm_engine_keeps_generic_plans_and_other_engines_do_not():
    """The engine tiermem makes for an LTM URL sets plan_cache_mode on each session (a prepared
    range is not planned again at every call, tiers/ltm_schema.py); an engine made for another
    store keeps the server's setting."""
    for generic in (True, False):
        engine = make_engine(TEST_POSTGRES_URL, None, generic_plans=generic)
        try:
            for _ in range(2):  # a new session, then a pooled one
                try:
                    with engine.connect() as conn:
                        now, server = conn.execute(sqlalchemy.text(
                            "SELECT setting, reset_val FROM pg_settings WHERE name = 'plan_cache_mode'")).one()
                except sqlalchemy.exc.OperationalError as exc:
                    unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}", exc)
                assert now == ("force_generic_plan" if generic else server)
        finally:
            engine.dispose()


# -- several processes, one fresh schema -----------------------------------------------------------------

WORKERS, SHARED_AGENTS, STEPS = 4, ("ant", "bee", "cat"), 150  # each worker: STEPS steps of every agent


def worker_config(prefix: str, ltm_url: str, data_dir: str) -> MemoryConfig:
    """Small tiers and frequent automatic maintenance, so memories keep moving while others store."""
    return MemoryConfig(redis_url=TEST_REDIS_URL, key_prefix=prefix, data_dir=data_dir, cleanup_interval=25,
                        stm_config={"memory_limit": 10}, im_config={"memory_limit": 20},
                        ltm_config={"url": ltm_url, "dictionary_samples": 50, "batch_size": 16, "partitions": 4},
                        search_config={"text_embedding": "off"})


def store_and_maintain(worker: int, prefix: str, ltm_url: str, data_dir: str, barrier: Any, queue: Any) -> None:
    """Worker ``worker`` stores steps worker, worker + WORKERS, ... of every shared agent, a step of
    all agents per store_many, and maintains every agent after every tenth step; puts on ``queue``
    what it stored, how many memories its forced maintenance moved IM -> LTM, and its error."""
    stored: dict[str, tuple[str, int]] = {}
    to_ltm = 0
    try:
        barrier.wait()  # all open the fresh schema at once: its tables are created by whoever is first
        with AgentMemoryAPI(worker_config(prefix, ltm_url, data_dir)) as api:
            for n in range(STEPS):
                step = n * WORKERS + worker
                items = [{"agent_id": agent, "step_number": step, "data": {"worker": worker, "step": step, "agent": agent}}
                         for agent in SHARED_AGENTS]
                stored.update(zip(api.store_many(items), ((agent, step) for agent in SHARED_AGENTS)))
                if n % 10 == 9:
                    to_ltm += api.force_memory_maintenance().im_to_ltm
        queue.put((worker, stored, to_ltm, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
        queue.put((worker, stored, to_ltm, f"{type(exc).__name__}: {exc}"))


@pytest.fixture
def fresh_schema_url() -> Iterator[str]:
    """An LTM URL naming a PostgreSQL schema of this test's own, empty (no tiermem table yet)."""
    with postgres_schema() as engine:
        with engine.connect() as conn:
            schema = conn.execute(sqlalchemy.text("SELECT current_schema()")).scalar()
        joiner = "&" if "?" in TEST_POSTGRES_URL else "?"
        yield f"{TEST_POSTGRES_URL}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture
def real_prefix() -> Iterator[str]:
    name = f"tpg{uuid.uuid4().hex[:10]}"
    yield name
    client = real_redis()
    delete_prefix(client, name)
    client.close()


@pytest.mark.slow
def test_processes_storing_and_maintaining_through_one_fresh_schema_lose_and_double_nothing(
    fresh_schema_url: str, real_prefix: str, tmp_path: Path
) -> None:
    barrier = FORK.Barrier(WORKERS)
    queue = FORK.Queue()
    processes = [FORK.Process(target=store_and_maintain,
                              args=(w, real_prefix, fresh_schema_url, str(tmp_path / f"w{w}"), barrier, queue))
                 for w in range(WORKERS)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [f"worker {w}: {error}" for w, _, _, error in results if error]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    assert sum(moved > 0 for _, _, moved, _ in results) >= 2, "fewer than two processes moved memories into LTM"
    stored = {memory_id: where for _, ids, _, _ in results for memory_id, where in ids.items()}
    assert len(stored) == WORKERS * STEPS * len(SHARED_AGENTS)

    with AgentMemoryAPI(worker_config(real_prefix, fresh_schema_url, str(tmp_path / "check"))) as api:
        api.force_memory_maintenance()
        for agent in SHARED_AGENTS:
            answer = api.retrieve_by_time_range(agent, *WHOLE_RANGE)
            ids = [m["memory_id"] for m in answer]
            doubled = [m for m, n in Counter(ids).items() if n > 1]
            assert not doubled, f"{agent}: answered twice: {doubled[:5]}"
            mine = sorted(m for m, (a, _) in stored.items() if a == agent)
            assert sorted(ids) == mine, f"{agent}: {len(set(mine) - set(ids))} missing, {len(set(ids) - set(mine))} unknown"
            assert [m["step_number"] for m in answer] == list(range(WORKERS * STEPS)), f"{agent}: a gap in the steps"
            for memory in answer:
                assert memory["contents"] == {"worker": memory["step_number"] % WORKERS, "step": memory["step_number"],
                                              "agent": agent}
            tiers = api.get_memory_statistics(agent)["tiers"]
            assert sum(tier["count"] for tier in tiers.values()) == len(mine), tiers  # each in one tier
            assert tiers["ltm"]["count"] > len(mine) // 2, tiers
    engine = sqlalchemy.create_engine(fresh_schema_url)
    try:
        with engine.connect() as conn:
            rows, distinct, partitions = conn.execute(sqlalchemy.text(
                "SELECT count(*), count(DISTINCT memory_id), "
                "(SELECT count(*) FROM pg_inherits WHERE inhparent = 'tiermem_ltm'::regclass) FROM tiermem_ltm")).one()
    finally:
        engine.dispose()
    assert rows == distinct and partitions == 4


def _kill_sessions(engine: sqlalchemy.engine.Engine) -> None:
    """End, from another session, the session the engine's pool holds (its only one)."""
    with engine.connect() as conn:
        pid = conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
    admin = sqlalchemy.create_engine(TEST_POSTGRES_URL)
    try:
        with admin.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()


def test_a_session_lost_under_the_driver_level_paths_is_a_tier_error_and_the_next_call_reconnects(
    private_postgres_engine,
):
    """The COPY of new rows and the binary range read run below SQLAlchemy's execute: a session
    PostgreSQL ended under them raises TierUnavailableError and is dropped from the pool, so the
    next call works on a new one."""
    engine = private_postgres_engine
    ltm = SQLTier(engine, "lost")
    ltm.codec = PayloadCodec()
    try:
        ltm.put_many("a", [_record("m1", 1)])
        for call in (lambda: ltm.put_many("a", [_record("m2", 2)]), lambda: ltm.range("a", lo=0, hi=9)):
            _kill_sessions(engine)
            try:
                call()
            except TierUnavailableError:
                pass
            else:
                raise AssertionError("a call on a session PostgreSQL ended did not fail")
            assert [r.memory_id for r in ltm.range("a", lo=0, hi=9)] == ["m1"]  # a new session
        ltm.put_many("a", [_record("m2", 2)])
        assert [r.memory_id for r in ltm.range("a")] == ["m1", "m2"]
    finally:
        ltm.close()
