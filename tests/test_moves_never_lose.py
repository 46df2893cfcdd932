"""Invariant 1: nothing is lost in a move.

Every step of every move (STM -> IM, IM -> LTM, LTM -> IM) is made to fail in turn. After each
failure every stored memory must still be found exactly once, with the contents it was stored
with, by every kind of query; the next maintenance must finish the interrupted move and leave no
duplicate and no journal behind. A last test kills a maintaining process with SIGKILL at random
moments and checks the same from a fresh process.

Faults are injected diskcache-style: the real tier (or Redis client) method that performs the
step is patched to fail, nothing else is faked.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from memory import AgentMemoryAPI
from memory._engine.maintenance import MaintenanceReport
from memory.config import MemoryConfig
from support import TEST_REDIS_URL, real_redis
from tiers.errors import MemoryMaintenanceException, TierUnavailableError
from tiers.keys import KeySchema
from tiers.ltm import SQLTier

AGENT = "mover"
STORED = 150
STM_LIMIT, IM_LIMIT = 20, 40
WHOLE_RANGE = (0, 2**53 - 1)
GROUPS = 5

LIMITS = {
    "cleanup_interval": 1_000_000,  # no automatic maintenance: only the runs the test forces
    "stm_config": {"memory_limit": STM_LIMIT},
    "im_config": {"memory_limit": IM_LIMIT},
    "ltm_config": {"dictionary_samples": 50},  # a trained dictionary early, so LTM uses one
}


@dataclass(frozen=True)
class Stored:
    """What the test stored, to compare every answer against."""

    agent_id: str
    step: int
    memory_type: str
    importance: float
    contents: Any


# -- what must hold ---------------------------------------------------------------------------------


def assert_same_memory(got: dict[str, Any], expected: Stored) -> None:
    assert got["agent_id"] == expected.agent_id
    assert got["step_number"] == expected.step
    assert got["metadata"]["memory_type"] == expected.memory_type
    assert got["metadata"]["importance_score"] == expected.importance
    assert got["contents"] == expected.contents, f"contents of {got['memory_id']} changed"


def assert_exactly(answer: Any, expected_ids: list[str], stored: dict[str, Stored], what: str) -> None:
    """``answer`` holds each expected memory once, in the expected order, intact."""
    assert not answer.degraded, f"{what}: tiers {answer.failed_tiers} did not answer"
    ids = [memory["memory_id"] for memory in answer]
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    assert not twice, f"{what}: returned more than once: {twice[:5]}"
    missing = sorted(set(expected_ids) - set(ids))
    assert not missing, f"{what}: lost {len(missing)} memories, e.g. {missing[:5]}"
    assert ids == expected_ids, f"{what}: wrong order"
    for memory in answer:
        assert_same_memory(memory, stored[memory["memory_id"]])


def assert_each_found_once(api: AgentMemoryAPI, agent_id: str, stored: dict[str, Stored]) -> None:
    """Every kind of query finds every memory of the agent exactly once, contents intact."""
    mine = {mid: s for mid, s in stored.items() if s.agent_id == agent_id}
    by_step = sorted(mine, key=lambda mid: (mine[mid].step, mid))
    assert_exactly(api.retrieve_by_time_range(agent_id, *WHOLE_RANGE), by_step, mine, "time range")
    assert_exactly(api.retrieve_by_attributes(agent_id, {"probe.run": "moves"}), by_step, mine, "attributes")
    for group in range(GROUPS):
        in_group = [mid for mid in by_step if mine[mid].contents["probe"]["group"] == group]
        found = api.retrieve_by_attributes(agent_id, {"probe.group": group})
        assert_exactly(found, in_group, mine, f"attributes group {group}")
    by_importance = sorted(mine, key=lambda mid: (mine[mid].importance, mid), reverse=True)
    important = api.retrieve_most_important(agent_id, k=10 * len(mine))
    assert_exactly(important, by_importance, mine, "most important")
    for memory_id, expected in mine.items():
        got = api.get_memory(agent_id, memory_id)
        assert got is not None, f"get_memory lost {memory_id}"
        assert got["memory_id"] == memory_id
        assert_same_memory(got, expected)


def tier_counts(api: AgentMemoryAPI, agent_id: str) -> dict[str, int]:
    return {name: tier["count"] for name, tier in api.get_memory_statistics(agent_id)["tiers"].items()}


def journal(redis_client: Any, prefix: str, agent_id: str) -> dict[bytes, bytes]:
    return redis_client.hgetall(KeySchema(prefix).moves(agent_id))


# -- the memories -------------------------------------------------------------------------------------


def contents_for(rng: random.Random, i: int) -> dict[str, Any]:
    """Nested, mixed-type contents: what a move must carry over byte for byte."""
    return {
        "probe": {"run": "moves", "group": i % GROUPS, "index": i},
        "position": [rng.uniform(-100, 100), rng.uniform(-100, 100), i],
        "inventory": {"wood": rng.randint(0, 9), "tools": ["axe", "saw", "rope"][: i % 4]},
        "mood": rng.choice(["calm", "alert", None]),
        "done": bool(i % 2),
        "history": [{"step": i - d, "ok": d % 2 == 0, "score": d / 3} for d in range(i % 5)],
        "raw": bytes(rng.getrandbits(8) for _ in range(i % 9)),
        "slots": {i % 3: "int key", -1: [None, True, 1.5]},
        "note": "the quick brown fox " * (i % 12),
    }


def store_memories(api: AgentMemoryAPI, seed: int = 7) -> dict[str, Stored]:
    """~150 memories, three to a step, every memory type, through every store call."""
    rng = random.Random(seed)
    stored: dict[str, Stored] = {}
    i = 0
    while i < STORED:
        if i % 30 == 0:  # a batch through store_many now and then
            batch = []
            for j in range(i, min(i + 10, STORED)):
                batch.append({
                    "agent_id": AGENT,
                    "data": contents_for(rng, j),
                    "step_number": j // 3,
                    "memory_type": ("state", "action", "interaction")[j % 3],
                    "priority": round(rng.random(), 1),  # rounded: importance ties happen
                })
            for item, memory_id in zip(batch, api.store_many(batch)):
                stored[memory_id] = Stored(AGENT, item["step_number"], item["memory_type"],
                                           item["priority"], item["data"])
            i += len(batch)
            continue
        memory_type = ("state", "action", "interaction")[i % 3]
        store = {"state": api.store_agent_state, "action": api.store_agent_action,
                 "interaction": api.store_agent_interaction}[memory_type]
        contents, priority = contents_for(rng, i), round(rng.random(), 1)
        memory_id = store(AGENT, contents, i // 3, priority)
        stored[memory_id] = Stored(AGENT, i // 3, memory_type, priority, contents)
        i += 1
    return stored


# -- the faults ---------------------------------------------------------------------------------------


def tier_fault(tier: str | None, method: str) -> Callable[[AgentMemoryAPI, pytest.MonkeyPatch], None]:
    """Make one method of one tier (or of the tier bundle, ``tier=None``) raise."""

    def inject(api: AgentMemoryAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        target = api._tiers if tier is None else getattr(api._tiers, tier)
        where = f"{tier or 'tierset'}.{method}"

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise TierUnavailableError(where, "fault injected by the test")

        monkeypatch.setattr(target, method, fail)

    return inject


def redis_fault(command: str, key: Callable[[KeySchema], Callable[[str], str]]):
    """Make one Redis command fail on one of the agent's keys, as a dropped connection would;
    the same command on any other key still runs."""

    def inject(api: AgentMemoryAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        client = api._tiers.client
        original = getattr(client, command)
        doomed = key(api._tiers.keys)(AGENT)

        def flaky(name: Any, *args: Any, **kwargs: Any) -> Any:
            if name == doomed:
                raise RedisConnectionError(f"fault injected by the test on {command} {name}")
            return original(name, *args, **kwargs)

        monkeypatch.setattr(client, command, flaky)

    return inject


@dataclass(frozen=True)
class Fault:
    name: str
    move: str  # "demote": the first maintenance after storing; "promote": LTM -> IM after reads
    inject: Callable[[AgentMemoryAPI, pytest.MonkeyPatch], None]
    journaled: bool  # the failed move leaves its ids in the journal
    duplicated: bool  # the failed move leaves a copy in two tiers
    then: str  # what the next maintenance reports: "stm_to_im", "healed" or "journal cleared"


FAULTS = [
    Fault("stm>im: read the source", "demote", tier_fault("stm", "get_many"), False, False, "stm_to_im"),
    Fault("stm>im: the atomic move", "demote", tier_fault("im", "move_in"), False, False, "stm_to_im"),
    Fault("im>ltm: journaled, before the LTM write", "demote", tier_fault("im", "get_many"), True, False, "healed"),
    Fault("im>ltm: the LTM write", "demote", tier_fault("ltm", "put_many"), True, False, "healed"),
    Fault("im>ltm: after the LTM write, widening its bounds", "demote", tier_fault(None, "widen_ltm_bounds"),
          True, True, "healed"),
    Fault("im>ltm: after the LTM write, the IM delete", "demote", tier_fault("im", "delete_many"),
          True, True, "healed"),
    Fault("im>ltm: the journal clear", "demote", redis_fault("hdel", lambda keys: keys.moves),
          True, False, "journal cleared"),
    Fault("ltm>im: the IM put", "promote", tier_fault("im", "put_many"), True, False, "healed"),
    Fault("ltm>im: the read counts", "promote", redis_fault("hset", lambda keys: keys.reads),
          True, True, "healed"),
    Fault("ltm>im: the LTM delete", "promote", tier_fault("ltm", "delete_many"), True, True, "healed"),
    Fault("ltm>im: the journal clear", "promote", redis_fault("hdel", lambda keys: keys.moves),
          True, False, "journal cleared"),
]


def read_some_ltm_memories(api: AgentMemoryAPI, stored: dict[str, Stored]) -> None:
    """Read a few LTM memories ``promote_threshold`` times each, so maintenance promotes them."""
    in_ltm = [mid for mid in sorted(stored) if api.get_memory(AGENT, mid)["tier"] == "ltm"]
    assert len(in_ltm) >= 8, "the setup should have filled LTM"
    chosen = in_ltm[::max(1, len(in_ltm) // 8)][:8]
    for memory_id in chosen:
        for _ in range(api.config.ltm_config.promote_threshold):
            assert api.get_memory(AGENT, memory_id)["tier"] == "ltm"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_failed_move_loses_nothing_and_heals(make_api, clock, redis_client, prefix, fault: Fault):
    api = make_api(clock=clock, **LIMITS)
    stored = store_memories(api)
    assert_each_found_once(api, AGENT, stored)  # also warms the result cache the moves must invalidate
    if fault.move == "promote":
        settled = api.force_memory_maintenance()
        assert settled.im_to_ltm > 0
        read_some_ltm_memories(api, stored)

    with pytest.MonkeyPatch.context() as monkeypatch:  # undone before the healing run
        fault.inject(api, monkeypatch)
        with pytest.raises(MemoryMaintenanceException) as failed:
            api.force_memory_maintenance()
        assert isinstance(failed.value.report, MaintenanceReport)
        assert isinstance(failed.value.__cause__, TierUnavailableError)

        assert_each_found_once(api, AGENT, stored)
        pending = journal(redis_client, prefix, AGENT)
        assert bool(pending) == fault.journaled, f"journal after the failure: {pending}"
        held = sum(tier_counts(api, AGENT).values())
        assert (held > STORED) == fault.duplicated, f"{held} copies of {STORED} memories"
        assert held >= STORED

    report = api.force_memory_maintenance()
    if fault.then == "stm_to_im":
        assert report.stm_to_im > 0, report
    elif fault.then == "healed":
        assert report.healed > 0, report
    assert not report.busy
    assert journal(redis_client, prefix, AGENT) == {}
    assert sum(tier_counts(api, AGENT).values()) == STORED
    assert_each_found_once(api, AGENT, stored)


# -- a process killed at random moments ----------------------------------------------------------------

KILL_AGENTS = ("k0", "k1")
LEASE_SECONDS = 1.0
KILL_ROUNDS = 6

CHILD = r"""
import json, random, sys
from memory.config import MemoryConfig
from memory import AgentMemoryAPI

prefix, redis_url, db_path, data_dir, ids_path, round_no, lease = sys.argv[1:8]
round_no = int(round_no)
agents = ["k0", "k1"]
api = AgentMemoryAPI(MemoryConfig(
    key_prefix=prefix, redis_url=redis_url, data_dir=data_dir, maintenance_lock_timeout=float(lease),
    cleanup_interval=1_000_000, stm_config={"memory_limit": 20}, im_config={"memory_limit": 40},
    ltm_config={"db_path": db_path, "dictionary_samples": 50},
))
rng = random.Random(round_no)
serial = 0

def store_pair(out):
    global serial
    batch = []
    for agent in agents:
        serial += 1
        batch.append({
            "agent_id": agent,
            "data": {"kill": {"round": round_no, "serial": serial},
                     "pos": [rng.uniform(-1, 1), rng.randint(0, 9)],
                     "deep": {"a": {"b": [serial, {"c": None, "ok": serial % 2 == 0}]}},
                     "note": "lorem ipsum " * (serial % 15)},
            "step_number": round_no * 1000 + serial,
            "memory_type": ("state", "action", "interaction")[serial % 3],
            "priority": round(rng.random(), 1),
        })
    for item, memory_id in zip(batch, api.store_many(batch)):
        out.write(json.dumps({"memory_id": memory_id, **item}) + "\n")
    out.flush()  # reported only once the store returned

with open(ids_path, "a") as out:
    for _ in range(40):
        store_pair(out)
    print("ready", flush=True)
    while True:
        api.force_memory_maintenance()
        for agent in agents:
            # focus on every memory (a counted read), so LTM memories get promoted back
            for memory in api.retrieve_by_time_range(agent, 0, 2**53 - 1):
                api.get_memory(agent, memory["memory_id"])
        store_pair(out)
"""


def read_reported(ids_path: str) -> dict[str, Stored]:
    """The memories the child reported as stored; a torn last line was never reported."""
    reported = {}
    with open(ids_path) as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            item = json.loads(line)
            reported[item["memory_id"]] = Stored(item["agent_id"], item["step_number"], item["memory_type"],
                                                 item["priority"], item["data"])
    return reported


def assert_kill_survivors(api: AgentMemoryAPI, reported: dict[str, Stored], unreported_allowed: int) -> int:
    """Every reported memory is found exactly once; returns how many memories the tiers hold."""
    total = 0
    for agent in KILL_AGENTS:
        mine = {mid: s for mid, s in reported.items() if s.agent_id == agent}
        everything = api.retrieve_by_time_range(agent, *WHOLE_RANGE)
        ids = [m["memory_id"] for m in everything]
        assert len(ids) == len(set(ids)), "a memory came back twice"
        assert set(mine) <= set(ids), f"lost {sorted(set(mine) - set(ids))[:5]}"
        extra = set(ids) - set(mine)
        assert len(extra) <= unreported_allowed, f"{len(extra)} memories nobody stored"
        steps = {m["memory_id"]: m["step_number"] for m in everything}
        assert ids == sorted(ids, key=lambda mid: (steps[mid], mid)), "not in step order"
        for memory in everything:
            if memory["memory_id"] in mine:
                assert_same_memory(memory, mine[memory["memory_id"]])
        tagged = api.retrieve_by_attributes(agent, {"deep.a.b.1.c": None})
        assert [m["memory_id"] for m in tagged] == ids
        important = api.retrieve_most_important(agent, k=10 * len(ids) + 10)
        assert sorted(m["memory_id"] for m in important) == sorted(ids)
        for memory_id, expected_memory in mine.items():
            got = api.get_memory(agent, memory_id)
            assert got is not None, f"get_memory lost {memory_id}"
            assert_same_memory(got, expected_memory)
        total += len(ids)
    return total


def wait_out_the_lease(client: Any, keys: KeySchema) -> None:
    """The killed child's maintenance lease is wall-clock time in Redis: wait until it expires
    (at most LEASE_SECONDS), so the parent's maintenance can take the agents over and heal."""
    remaining = [client.pttl(keys.lock(agent)) for agent in KILL_AGENTS]
    assert -1 not in remaining, "a maintenance lease without an expiry would block the agent forever"
    longest = max(remaining)
    assert longest <= LEASE_SECONDS * 1000
    if longest > 0:
        time.sleep(longest / 1000 + 0.02)


def tail(path: Path) -> str:
    return path.read_text()[-2000:]


def kill_at_a_random_moment(child: subprocess.Popen, client: Any, keys: KeySchema, rng: random.Random,
                            aim_at_a_move: bool, stderr_path: Path) -> None:
    """SIGKILL the child after a random time, or (``aim_at_a_move``) once a move is journaled,
    a random number of Redis round trips later, so kills also land inside IM<->LTM moves."""
    if aim_at_a_move:
        journals = [keys.moves(agent) for agent in KILL_AGENTS]
        deadline = time.monotonic() + 10
        while not client.exists(*journals):
            assert child.poll() is None, f"the child exited by itself: {tail(stderr_path)}"
            assert time.monotonic() < deadline, "the child never journaled a move"
        for _ in range(rng.randint(0, 20)):
            client.ping()
    else:
        try:  # the child must still be running when killed
            child.wait(timeout=rng.uniform(0.05, 0.8))
            pytest.fail(f"the child exited by itself: {tail(stderr_path)}")
        except subprocess.TimeoutExpired:
            pass
    os.kill(child.pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigkill_during_maintenance_loses_nothing(tmp_path):
    client = real_redis()
    prefix = f"kill{uuid.uuid4().hex[:10]}"
    keys = KeySchema(prefix)
    db_path, data_dir, ids_path = str(tmp_path / "ltm.sqlite"), str(tmp_path / "data"), str(tmp_path / "ids.jsonl")
    config = MemoryConfig(
        key_prefix=prefix, redis_url=TEST_REDIS_URL, data_dir=data_dir, cleanup_interval=1_000_000,
        maintenance_lock_timeout=LEASE_SECONDS, stm_config={"memory_limit": 20},
        im_config={"memory_limit": 40}, ltm_config={"db_path": db_path, "dictionary_samples": 50},
    )
    rng = random.Random(20240611)
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    interrupted_moves = 0
    try:
        for round_no in range(KILL_ROUNDS):
            stderr_path = tmp_path / f"child{round_no}.stderr"
            with open(stderr_path, "w") as stderr:
                child = subprocess.Popen(
                    [sys.executable, "-c", CHILD, prefix, TEST_REDIS_URL, db_path, data_dir, ids_path,
                     str(round_no), str(LEASE_SECONDS)],
                    stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                )
            try:
                ready = child.stdout.readline()
                assert ready == "ready\n", f"the child failed to start: {tail(stderr_path)}"
                kill_at_a_random_moment(child, client, keys, rng, round_no % 2 == 1, stderr_path)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
                child.stdout.close()

            reported = read_reported(ids_path)
            unreported_allowed = round_no + 1  # one store_many in flight per kill, one memory per agent
            with AgentMemoryAPI(config) as api:
                if any(client.exists(keys.moves(agent)) for agent in KILL_AGENTS):
                    interrupted_moves += 1
                assert_kill_survivors(api, reported, unreported_allowed)
                wait_out_the_lease(client, keys)
                report = api.force_memory_maintenance()
                assert not report.busy
                for agent in KILL_AGENTS:
                    assert client.hgetall(keys.moves(agent)) == {}
                held = assert_kill_survivors(api, reported, unreported_allowed)
                counted = sum(sum(tier_counts(api, agent).values()) for agent in KILL_AGENTS)
                assert counted == held, "a memory is left in two tiers after healing"
        assert interrupted_moves > 0, "no kill landed inside a journaled move; the test proved little"
    finally:
        doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if doomed:
            client.delete(*doomed)
        client.close()


# -- a promotion racing a reader --------------------------------------------------------------------------
# Readers ask STM and IM, then LTM; a promotion writes IM, then deletes from LTM. One that lands
# between a reader's two reads must not make a memory vanish from the answer.

def promotion_ready(make_api):
    """An engine and one LTM memory read often enough to be promoted by the next maintenance."""
    api = make_api(cleanup_interval=10_000, stm_config={"memory_limit": 5},
                   im_config={"memory_limit": 5, "low_watermark": 1.0},
                   ltm_config={"promote_threshold": 2, "dictionary_samples": 5})
    ids = [api.store_agent_state("racer", {"s": step}, step) for step in range(30)]
    api.force_memory_maintenance("racer")
    target = ids[0]
    assert api.get_memory("racer", target)["tier"] == "ltm"
    api.get_memory("racer", target)  # second focused read: promoted at the next maintenance
    return api, target


def promote_during_first(monkeypatch, method: str, api) -> list[bool]:
    """Patch SQLTier.<method> so the reader's first LTM read runs after a whole promotion."""
    original = getattr(SQLTier, method)
    fired: list[bool] = []

    def late_read(self, *args, **kwargs):
        if not fired:
            fired.append(True)
            assert api.force_memory_maintenance("racer").ltm_to_im == 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLTier, method, late_read)
    return fired


def test_a_time_range_read_overlapping_a_promotion_still_finds_the_memory(make_api, monkeypatch):
    api, target = promotion_ready(make_api)
    api.clear_cache()
    fired = promote_during_first(monkeypatch, "range", api)
    answer = api.retrieve_by_time_range("racer", 0, 29)
    assert fired and [r["memory_id"] for r in answer].count(target) == 1
    assert [r["step_number"] for r in answer] == list(range(30))
    assert next(r for r in answer if r["memory_id"] == target)["tier"] == "im"


def test_get_memory_overlapping_a_promotion_still_finds_the_memory(make_api, monkeypatch):
    api, target = promotion_ready(make_api)
    fired = promote_during_first(monkeypatch, "get_many", api)
    found = api.get_memory("racer", target)
    assert fired and found is not None and found["tier"] == "im" and found["contents"] == {"s": 0}
