"""A Redis of the test's own, killed and restarted, with and without its data.

Killed during store_many (AOF on, ``appendfsync always``: whatever Redis acknowledged is on disk):
the call must say which agents' memories landed, all-or-nothing per agent, and a retry with the
same idempotency key must complete the batch without a duplicate and with the same ids
(invariants 8 and 11). Restarted empty (persistence off) under an engine that keeps its result
cache and in-process indices: no query may name a memory no tier holds, new writes and LTM
memories must still be found (invariant 10). Restarted with its data: everything is still found.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from fault_support import WHOLE_RANGE, answer_problems, every_query_kind
from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from tiers import errors
from tiers.errors import MemoryStoreException
from tiers.keys import KeySchema

pytestmark = pytest.mark.slow

AGENTS, PER_AGENT = 30, 100
KILL_ROUNDS = 3


def engine_on(server: Any, tmp_path: Any, prefix: str, **options: Any) -> AgentMemoryAPI:
    options.setdefault("cleanup_interval", 1_000_000)
    options.setdefault("search_config", {"text_embedding": "off", "state_vectors": True})
    return AgentMemoryAPI(MemoryConfig(redis_url=server.url(), key_prefix=prefix,
                                       data_dir=str(tmp_path / f"data-{prefix}"), **options))


# -- killed during store_many ---------------------------------------------------------------------------


def batch(round_no: int) -> list[dict[str, Any]]:
    """3,000 records over 30 agents, step-major, each with a serial number of its own."""
    return [{"agent_id": f"r{round_no}-a{a:02d}", "step_number": step,
             "data": {"serial": step * AGENTS + a, "round": round_no, "position": [a, step], "note": "x" * (step % 40)}}
            for step in range(PER_AGENT) for a in range(AGENTS)]


def serials_held(api: AgentMemoryAPI, agent_id: str) -> Counter:
    return Counter(m["contents"]["serial"] for m in api.retrieve_by_time_range(agent_id, *WHOLE_RANGE))


def store_many_seconds(api: AgentMemoryAPI) -> float:
    """How long this machine takes for the batch (a round of its own, on agents no check reads)."""
    records = [{**r, "agent_id": "warm-" + r["agent_id"]} for r in batch(99)]
    started = time.perf_counter()
    api.store_many(records)
    return time.perf_counter() - started


def kill_during(server: Any, seconds: float, call: Any) -> tuple[Any, BaseException | None]:
    """Run ``call()`` while a thread SIGKILLs ``server`` after ``seconds``; its answer or error."""
    killer = threading.Timer(seconds, server.kill)
    killer.start()
    try:
        return call(), None
    except MemoryStoreException as exc:
        return None, exc
    finally:
        killer.join(10)
        assert not killer.is_alive()


def landed_per_agent(api: AgentMemoryAPI, records: list[dict[str, Any]]) -> dict[str, str]:
    """Per agent: "all", "none" or "partial (n of m)" of its records found after the restart."""
    expected: dict[str, set[int]] = {}
    for record in records:
        expected.setdefault(record["agent_id"], set()).add(record["data"]["serial"])
    verdicts = {}
    for agent, serials in expected.items():
        held = serials_held(api, agent)
        assert all(n == 1 for n in held.values()), f"{agent}: a record stored twice"
        found = len(set(held) & serials)
        whole = len(serials)
        verdicts[agent] = "all" if found == whole else "none" if found == 0 else f"partial ({found} of {whole})"
    return verdicts


def test_a_kill_during_store_many_reports_which_agents_landed(make_redis_process, tmp_path):
    server = make_redis_process(persistent=True)
    rng = random.Random(4242)
    interrupted = 0
    incomplete_error = getattr(errors, "StoreIncompleteError", None)
    for round_no in range(KILL_ROUNDS):
        prefix = f"kill{round_no}"
        records = batch(round_no)
        with engine_on(server, tmp_path, prefix) as api:
            seconds = store_many_seconds(api)
            answer, error = kill_during(server, rng.uniform(0.1, 0.8) * seconds, lambda records=records: api.store_many(records))
            server.restart(keep_data=True)
            verdicts = landed_per_agent(api, records)
        tally = Counter(v if v in ("all", "none") else "partial" for v in verdicts.values())
        assert tally["partial"] == 0, f"round {round_no}: agents half stored: {verdicts}"
        if error is None:
            assert tally["all"] == AGENTS, f"round {round_no}: store_many returned, yet {dict(tally)}"
            continue
        interrupted += 1
        summary = f"round {round_no}: {tally['all'] * PER_AGENT} of {len(records)} records present after the restart"
        assert incomplete_error is not None and isinstance(error, incomplete_error), (
            f"store_many raised {type(error).__name__} ({error}); {summary}")
        assert isinstance(error, MemoryStoreException)
        check_ids(error.memory_ids, records)
        agents = set(verdicts)
        assert error.landed | error.not_landed | error.unknown == agents
        assert not (error.landed & error.not_landed or error.landed & error.unknown or error.not_landed & error.unknown)
        for agent in error.landed:
            assert verdicts[agent] == "all", f"{agent} reported landed, found {verdicts[agent]}; {summary}"
        for agent in error.not_landed:
            assert verdicts[agent] == "none", f"{agent} reported not landed, found {verdicts[agent]}; {summary}"
    assert interrupted > 0, "no kill landed inside store_many; the test proved nothing"


def check_ids(memory_ids: Any, records: list[dict[str, Any]]) -> None:
    """One distinct id per record, in input order (each an id of its record's agent)."""
    ids = list(memory_ids)
    assert len(ids) == len(records) == len(set(ids))
    for memory_id, record in zip(ids, records):
        assert memory_id.startswith(record["agent_id"] + "-"), f"{memory_id} is not an id of {record['agent_id']}"


def test_store_many_retried_with_its_idempotency_key_after_a_kill_stores_each_record_once(make_redis_process, tmp_path):
    server = make_redis_process(persistent=True)
    rng = random.Random(2424)
    interrupted = 0
    for round_no in range(KILL_ROUNDS):
        prefix, key = f"retry{round_no}", f"batch-{round_no}-{uuid.uuid4().hex[:8]}"
        records = batch(round_no)
        with engine_on(server, tmp_path, prefix) as api:
            seconds = store_many_seconds(api)
            answer, error = kill_during(server, rng.uniform(0.1, 0.8) * seconds,
                                        lambda records=records, key=key: api.store_many(records, idempotency_key=key))
            server.restart(keep_data=True)
            first_ids = answer if error is None else list(error.memory_ids)
            interrupted += error is not None
            again = api.store_many(records, idempotency_key=key)
            assert again == first_ids, "the retry did not return the ids of the first call"
            agents = {r["agent_id"] for r in records}
            held: Counter = Counter()
            for agent in agents:
                held += serials_held(api, agent)
            twice = sorted(serial for serial, n in held.items() if n > 1)
            assert not twice, f"round {round_no}: {len(twice)} records stored twice"
            assert set(held) == {r["data"]["serial"] for r in records}
            assert sum(api.get_memory_statistics(a)["total_memories"] for a in agents) == len(records)
            for memory_id, record in zip(first_ids[::97], records[::97]):
                got = api.get_memory(record["agent_id"], memory_id)
                assert got is not None and got["contents"] == record["data"]
    assert interrupted > 0, "no kill landed inside store_many; the test proved nothing"


# -- Redis comes back without its data -------------------------------------------------------------------

AGENT = "loser"
STORED = 100
ATTRIBUTES = {"probe.run": "restart"}
LIMITS = {"stm_config": {"memory_limit": 20}, "im_config": {"memory_limit": 40},
          "ltm_config": {"dictionary_samples": 30}}


def contents(i: int, phase: str) -> dict[str, Any]:
    return {"probe": {"run": "restart", "phase": phase, "i": i}, "position": [float(i % 17), float(i // 17)],
            "hp": i % 9, "mood": ("calm", "alert")[i % 2], "note": "lorem " * (i % 7)}


def store(api: AgentMemoryAPI, steps: range, phase: str) -> list[str]:
    return api.store_many([{"agent_id": AGENT, "data": contents(i, phase), "step_number": i,
                            "priority": round((i % 10) / 10, 1)} for i in steps])


def held_by_some_tier(api: AgentMemoryAPI, answers: dict[str, list[str]]) -> set[str]:
    """The ids named by ``answers`` that get_memory (no cache, no index) finds in some tier."""
    named = {memory_id for ids in answers.values() for memory_id in ids}
    return {memory_id for memory_id in named if api.get_memory(AGENT, memory_id) is not None}


def settled_engine(server: Any, tmp_path: Any) -> tuple[AgentMemoryAPI, list[str], set[str]]:
    """An engine holding 100 memories over all three tiers, its caches and indices warm."""
    api = engine_on(server, tmp_path, f"lost{uuid.uuid4().hex[:6]}", **LIMITS)
    ids = store(api, range(STORED), "before")
    report = api.force_memory_maintenance()
    assert report.im_to_ltm > 0, report
    tiers = {m["memory_id"]: m["tier"] for m in api.retrieve_by_time_range(AGENT, *WHOLE_RANGE)}
    assert sorted(tiers) == sorted(ids) and set(tiers.values()) == {"stm", "im", "ltm"}
    answers = every_query_kind(api, AGENT, ATTRIBUTES, contents(0, "before"))
    assert not answer_problems(answers, set(ids), set(ids))  # the warm-up itself is right
    return api, ids, {memory_id for memory_id, tier in tiers.items() if tier == "ltm"}


def agent_version(server: Any, api: AgentMemoryAPI) -> int:
    """The agent's version counter in Redis (tiers/keys.py: the meta hash), read directly."""
    client = server.client()
    try:
        return int(client.hget(KeySchema(api.config.key_prefix).meta(AGENT), "version") or 0)
    finally:
        client.close()


def test_after_redis_lost_its_data_no_query_names_a_gone_memory_and_new_ones_are_found(make_redis_process, tmp_path):
    server = make_redis_process(persistent=False)
    api, _, in_ltm = settled_engine(server, tmp_path)
    with api:
        cached_at = agent_version(server, api)  # the version the warm-up's answers were kept with
        server.restart(keep_data=False)

        # a writer goes on storing, one memory a call, until the counter is back where it was
        new = []
        while len(new) < 50 and (not new or agent_version(server, api) < cached_at):
            step = STORED + len(new)
            new.append(api.store_agent_state(AGENT, contents(step, "after"), step, priority=1.0))
        answers = every_query_kind(api, AGENT, ATTRIBUTES, contents(0, "before"))  # the warm-up's queries again
        problems = [f"after {len(new)} new stores, {problem}"
                    for problem in answer_problems(answers, held_by_some_tier(api, answers), in_ltm | set(new))]

        # without the result cache: what the in-process indices know must still be the truth
        api.clear_cache()
        new += store(api, range(STORED + len(new), STORED + len(new) + 10), "after")
        answers = every_query_kind(api, AGENT, ATTRIBUTES, contents(STORED, "after"))
        problems += [f"cache cleared, after {len(new)} new stores, {problem}"
                     for problem in answer_problems(answers, held_by_some_tier(api, answers), in_ltm | set(new))]
        assert not problems, "after Redis lost its data:\n" + "\n".join(problems)


def test_after_redis_restarted_with_its_data_everything_is_found(make_redis_process, tmp_path):
    server = make_redis_process(persistent=True)
    api, ids, _ = settled_engine(server, tmp_path)
    with api:
        server.restart(keep_data=True)

        again = every_query_kind(api, AGENT, ATTRIBUTES, contents(0, "before"))
        problems = [f"after the restart, {p}" for p in answer_problems(again, held_by_some_tier(api, again), set(ids))]
        new = set(store(api, range(STORED, STORED + 10), "after"))
        fresh = every_query_kind(api, AGENT, ATTRIBUTES, contents(STORED, "after"))
        problems += [f"after new writes, {p}"
                     for p in answer_problems(fresh, held_by_some_tier(api, fresh), set(ids) | new)]
        assert not problems, "\n".join(problems)
