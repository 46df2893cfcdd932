"""The embedded default keeps working memory, staged patterns, sessions and collaboration state
across restarts, a SIGKILL included; writes are atomic, users isolated, ids never paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import fakeredis
import pytest

from memory import (
    AccessTier,
    AgentCoordinator,
    AgentTask,
    AgentWorkspace,
    DuplicateTaskError,
    RedisShortTermMemory,
    StagedPattern,
    TaskOwnershipError,
    TeamSession,
)
from support import FakeClock, real_redis
from tiers import embedded_client
from tiers.coordination.durable import reading_back
from tiers.errors import MemoryConfigException

REPO = Path(__file__).resolve().parent.parent


def open_memory(data_dir: Path) -> RedisShortTermMemory:
    return RedisShortTermMemory(use_mock=True, data_dir=str(data_dir), key_prefix="emb")


def write_everything(memory: RedisShortTermMemory, tag: str) -> str:
    agent = AgentWorkspace("worker", short_term_memory=memory)
    agent.stash(f"result-{tag}", {"tag": tag})
    agent.stage_pattern(StagedPattern(f"pat-{tag}", "worker", "kind", f"name {tag}", "d", confidence=0.7))
    session = TeamSession(memory, f"session-{tag}", purpose=f"purpose {tag}")
    session.add_agent("worker")
    session.share("scope", {"tag": tag})
    agent.collaboration_state.trust_level = 0.9
    agent.persist_collaboration_state()
    return agent.session_id


def assert_everything(memory: RedisShortTermMemory, tag: str) -> None:
    agent = AgentWorkspace("worker", short_term_memory=memory)
    assert agent.retrieve(f"result-{tag}") == {"tag": tag}
    assert f"pat-{tag}" in [p.pattern_id for p in agent.get_staged_patterns()]
    session = TeamSession(memory, f"session-{tag}")
    assert session.get("scope") == {"tag": tag}
    assert session.get_info()["participants"] == ["worker"] and session.get_info()["purpose"] == f"purpose {tag}"
    assert agent.restore_collaboration_state() and agent.collaboration_state.trust_level == 0.9


def test_everything_survives_a_clean_restart(tmp_path):
    memory = open_memory(tmp_path)
    write_everything(memory, "a")
    team = AgentCoordinator(memory, "t")
    team.add_task(AgentTask("task-1", "job", priority=3))
    memory.close()

    again = open_memory(tmp_path)
    assert_everything(again, "a")
    assert [t.task_id for t in AgentCoordinator(again, "t").get_pending_tasks()] == ["task-1"]  # the snapshot
    again.close()


def test_a_task_queue_survives_a_clean_restart_mid_run(tmp_path):
    """Tasks live in the process on the embedded engine and go into the snapshot: after a restart
    pending, claimed and completed tasks, attempts, leases and counts are all as they were."""
    clock = FakeClock()
    memory = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    team = AgentCoordinator(memory, "t", lease_seconds=30)
    for name, priority in (("a", 9), ("b", 5), ("c", 5), ("d", 1)):
        team.add_task(AgentTask(name, "job", priority=priority, context={"n": name}))
    team.add_task(AgentTask("s", "style"))
    assert team.claim_task("w1", "job").task_id == "a"
    assert team.complete_task("a", {"ok": 1}, agent_id="w1")
    assert team.claim_task("w2", "job").task_id == "b"  # held across the restart
    memory.close()

    clock.advance(10)
    again = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    team = AgentCoordinator(again, "t", lease_seconds=30)
    assert [t.task_id for t in team.get_pending_tasks()] == ["c", "d", "s"]
    assert team.get_result("a")["result"] == {"ok": 1}
    assert team.aggregate_results() == {"total_completed": 1, "by_agent": {"w1": 1}, "by_type": {"job": 1}}
    with pytest.raises(TaskOwnershipError, match="claimed by 'w2'"):
        team.complete_task("b", {}, agent_id="w1")
    with pytest.raises(DuplicateTaskError):
        team.add_task(AgentTask("a", "job"))
    team.add_task(AgentTask("e", "job", priority=5))  # after "c": the FIFO order goes on
    assert [t.task_id for t in team.claim_tasks("w3", "job", 2)] == ["c", "e"]

    clock.advance(25)  # "b" was claimed 35 s ago and w2 has not been seen since: its lease lapsed
    reclaimed = team.claim_task("w3", "job")
    assert reclaimed.task_id == "b" and reclaimed.attempts == 2 and reclaimed.context == {"n": "b"}
    assert team.complete_task("b", None, agent_id="w3")
    again.close()

    third = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    team = AgentCoordinator(third, "t")
    assert [t.task_id for t in team.get_pending_tasks()] == ["d", "s"]
    assert team.aggregate_results()["by_agent"] == {"w1": 1, "w3": 1}
    third.close()


def test_completed_tasks_keep_their_retention_across_a_restart_and_the_snapshot_drops_them_after(tmp_path):
    clock = FakeClock()
    memory = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    team = AgentCoordinator(memory, "t", retention_seconds=100)
    for name in ("early", "late"):
        team.add_task(AgentTask(name, "job"))
        team.claim_task("w", "job")
        team.complete_task(name, name, agent_id="w")
        clock.advance(50)
    memory.close()

    again = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    team = AgentCoordinator(again, "t")
    assert team.get_result("early") is None and team.get_result("late")["result"] == "late"  # 100 s and 50 s ago
    assert team.claim_task("w", "job") is None  # a call: "early" is dropped
    again.close()

    third = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="emb", clock=clock)
    keys = third.keys.team("t")
    assert third.client.hkeys(keys.tasks) == [b"late"] and third.client.zrange(keys.done, 0, -1) == [b"late"]
    assert AgentCoordinator(third, "t").aggregate_results()["total_completed"] == 2
    third.close()


def test_eight_threads_claim_each_embedded_task_once(tmp_path):
    memory = open_memory(tmp_path)
    team = AgentCoordinator(memory, "load")
    for i in range(2000):
        team.add_task(AgentTask(f"job-{i}", "job", priority=i % 7))
    barrier = threading.Barrier(8)
    done: list[list[str]] = [[] for _ in range(8)]

    def worker(w: int) -> None:
        barrier.wait()
        while (claimed := team.claim_task(f"w{w}", "job")) is not None:
            team.complete_task(claimed.task_id, w, agent_id=f"w{w}")
            done[w].append(claimed.task_id)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    completed = [task_id for ids in done for task_id in ids]
    assert sorted(completed) == sorted(f"job-{i}" for i in range(2000))  # each once, none lost
    assert team.aggregate_results()["total_completed"] == 2000
    assert team.get_pending_tasks() == []
    memory.close()


def test_staged_patterns_and_promotions_survive_restarts(tmp_path):
    memory = open_memory(tmp_path)
    finder = AgentWorkspace("finder", short_term_memory=memory)
    for n in range(3):
        assert finder.stage_pattern(StagedPattern(f"p:{n}", "finder", "kind", f"name {n}", "d", confidence=0.5))
    memory.close()

    again = open_memory(tmp_path)
    lead = AgentWorkspace("lead", short_term_memory=again, access_tier=AccessTier.VALIDATOR)
    assert [p.pattern_id for p in lead.get_staged_patterns()] == ["p:0", "p:1", "p:2"]
    assert lead.promote_pattern("p:1").pattern_id == "p:1"
    assert lead.reject_pattern("p:2", "too narrow")
    again.close()

    third = open_memory(tmp_path)
    finder = AgentWorkspace("finder", short_term_memory=third)
    assert [p.pattern_id for p in finder.get_staged_patterns()] == ["p:0"]
    assert not finder.stage_pattern(StagedPattern("p:1", "finder", "kind", "again", "d"))  # promoted: never again
    assert third.pattern_library.get("p:2").status == "rejected"
    third.close()


def test_an_expired_staged_pattern_is_gone_and_stays_gone(tmp_path):
    memory = open_memory(tmp_path)
    store = memory.patterns._store
    store.stage("brief", b"\x80", 50, 1)  # a 50 ms TTL: the wall clock's, as Redis's own
    store.stage("kept", b"\x80", 60_000, 2)
    time.sleep(0.1)
    assert store.staged() == [b"\x80"]
    assert store.take_decision("brief", "token", 1000) is None
    memory.close()
    again = open_memory(tmp_path)
    assert again.patterns._store.staged() == [b"\x80"]
    assert again.patterns._store.take_decision("kept", "token", 1000) == b"\x80"
    again.close()


def test_of_threads_promoting_one_embedded_pattern_exactly_one_wins(tmp_path):
    memory = open_memory(tmp_path)
    for round_ in range(5):
        pid = f"contested-{round_}"
        AgentWorkspace("finder", short_term_memory=memory).stage_pattern(StagedPattern(pid, "finder", "k", "n", "d"))
        barrier = threading.Barrier(6)
        outcomes: dict[str, object] = {}

        def promote(validator: str) -> None:
            me = AgentWorkspace(validator, short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
            barrier.wait()  # noqa: B023 - the threads are joined before the next round
            outcomes[validator] = me.promote_pattern(pid)  # noqa: B023

        threads = [threading.Thread(target=promote, args=(f"v{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [name for name, won in outcomes.items() if won]
        assert len(outcomes) == 6 and len(winners) == 1
        assert memory.pattern_library.get(pid).decided_by == winners[0]
    assert memory.get_staged_patterns() == []
    memory.close()


KILLED_WRITER = """
import os, signal, sys
from memory import RedisShortTermMemory, AgentWorkspace, AccessTier
sys.path.insert(0, {tests!r})
from test_team_embedded import open_memory, write_everything
from pathlib import Path
memory = open_memory(Path({data!r}))
write_everything(memory, "before")
memory.close()                       # a snapshot with pattern "pat-before" staged
memory = open_memory(Path({data!r}))
lead = AgentWorkspace("lead", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
assert lead.promote_pattern("pat-before")
write_everything(memory, "after")    # only in the durable copy: no snapshot from here on
for n in range(200):
    AgentWorkspace("worker", short_term_memory=memory).stash(f"n{{n}}", n)
    print(n, flush=True)
    if n == 120:
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_sigkill_mid_run_loses_no_acknowledged_write_and_brings_nothing_back(tmp_path):
    script = KILLED_WRITER.format(tests=str(Path(__file__).parent), data=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    acknowledged = [int(line) for line in done.stdout.split()]
    assert acknowledged[-1] == 120

    memory = open_memory(tmp_path)
    assert_everything(memory, "after")
    worker = AgentWorkspace("worker", short_term_memory=memory)
    assert [worker.retrieve(f"n{n}") for n in acknowledged] == acknowledged
    staged = [p.pattern_id for p in worker.get_staged_patterns()]
    assert "pat-before" not in staged  # promoted after the snapshot: the snapshot's staged copy is not revived
    assert memory.pattern_library.get("pat-before").status == "promoted"
    memory.close()


def test_six_concurrent_writers_are_all_kept(tmp_path):
    memory = open_memory(tmp_path)
    session = TeamSession(memory, "shared", purpose="p")
    barrier = threading.Barrier(6)

    def writer(w: int) -> None:
        agent = AgentWorkspace(f"writer-{w}", short_term_memory=memory)
        barrier.wait()
        for n in range(30):
            agent.stash(f"k{n}", {"w": w, "n": n})
            session.add_agent(f"writer-{w}-{n}")
            session.share(f"from-{w}-{n}", n)
        agent.stage_pattern(StagedPattern(f"p{w}", f"writer-{w}", "t", "n", "d"))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    memory.close()

    again = open_memory(tmp_path)
    for w in range(6):
        agent = AgentWorkspace(f"writer-{w}", short_term_memory=again)
        assert [agent.retrieve(f"k{n}") for n in range(30)] == [{"w": w, "n": n} for n in range(30)]
    info = TeamSession(again, "shared").get_info()
    assert len(info["participants"]) == 180 and len(info["shared_keys"]) == 180
    assert sorted(p.pattern_id for p in again.get_staged_patterns()) == [f"p{w}" for w in range(6)]
    again.close()


def test_users_are_isolated_and_ids_never_name_paths(tmp_path):
    data = tmp_path / "data"
    memory = open_memory(data)
    alice = AgentWorkspace("alice", short_term_memory=memory)
    bob = AgentWorkspace("bob", short_term_memory=memory)
    alice.stash("notes", "alice's")
    bob.stash("notes", "bob's")
    sneaky = "../../../escaped"  # a legal id (dots and slashes are allowed), never a path
    alice.stash(sneaky, "data")
    AgentWorkspace(sneaky, short_term_memory=memory).stash("x", 1)
    alice.stage_pattern(StagedPattern("../../p", "alice", "t", "n", "d"))
    TeamSession(memory, "../../s", "p").share("k", 1)
    memory.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert {p.name for p in data.iterdir()} <= {
        "embedded-redis.lock", "embedded-redis.msgpack.zst", "embedded-redis.clean", "embedded-team.sqlite",
        "embedded-team.sqlite-wal", "embedded-team.sqlite-shm",
    }
    again = open_memory(data)
    assert AgentWorkspace("alice", short_term_memory=again).retrieve("notes") == "alice's"
    assert AgentWorkspace("bob", short_term_memory=again).retrieve("notes") == "bob's"
    assert AgentWorkspace("alice", short_term_memory=again).retrieve(sneaky) == "data"
    assert TeamSession(again, "../../s").get("k") == 1
    again.close()


def test_expired_entries_do_not_come_back(tmp_path):
    memory = open_memory(tmp_path)
    agent = AgentWorkspace("a", short_term_memory=memory)
    agent.stash("brief", 1, ttl=0.05)
    agent.stash("long", 2)

    time.sleep(0.1)  # the one TTL this layer cannot move with a clock: the embedded Redis's own
    memory.close()
    again = open_memory(tmp_path)
    agent = AgentWorkspace("a", short_term_memory=again)
    assert (agent.retrieve("brief"), agent.retrieve("long")) == (None, 2)
    assert 3_500_000 < again.client.pttl(again.keys.working("a", "long")) <= 3_600_000  # restart did not extend it
    again.close()


BUSY = """
from memory import RedisShortTermMemory
from tiers.errors import MemoryConfigException
try:
    RedisShortTermMemory(use_mock=True, data_dir={data!r})
except MemoryConfigException as exc:
    print("refused:", exc)
"""


def test_a_second_process_on_the_same_data_directory_is_refused_clearly(tmp_path):
    memory = open_memory(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", BUSY.format(data=str(tmp_path))], env=env, capture_output=True, text=True,
                          timeout=60)
    assert "refused:" in done.stdout and "REDIS_URL" in done.stdout, done.stdout + done.stderr
    memory.close()


def test_capabilities_and_stats_tell_the_truth(tmp_path):
    memory = open_memory(tmp_path)
    caps = memory.get_capabilities()
    assert caps["file_session"] and caps["persistence"] and caps["embedded"] and not caps["redis"]
    assert not caps["multi_process"] and not caps["signals_kept_across_restart"]
    stats = memory.get_stats()
    assert stats["mode"] == "embedded" and stats["memory_used"] == "N/A" and isinstance(stats["keys"], int)
    memory.close()
    with pytest.raises(MemoryConfigException):
        RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), key_prefix="bad prefix")


@pytest.mark.parametrize("engine", ["redis", "embedded"])
def test_a_durable_script_runs_unchanged_and_reads_back_what_it_touched(engine, tmp_path):
    """The wrapper the durable copy puts around a write script: the script sees only its own KEYS and
    ARGV (counts included), returns as it would alone, and the keys it touched are read in the same call."""
    client = real_redis() if engine == "redis" else embedded_client.client(fakeredis.FakeServer())
    prefix = f"t{uuid.uuid4().hex[:12]}"
    h, z, s, gone = (f"{prefix}:{{durable}}:{name}" for name in ("h", "z", "s", "gone"))  # one slot
    write = """
if #KEYS ~= 3 or #ARGV ~= 2 then return redis.error_reply('saw ' .. #KEYS .. ' keys, ' .. #ARGV .. ' args') end
redis.call('HSET', KEYS[1], 'f', ARGV[1])
redis.call('ZADD', KEYS[2], 2.5, ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', 60000)
if ARGV[1] == 'nothing' then return nil end
return 7
"""
    items = [(h, "hash"), (z, "zset"), (z, "zmember:m"), (s, "string"), (gone, "string")]
    try:
        for value, expected in (("v", 7), ("nothing", None)):
            reply, read = client.eval(
                reading_back(write), 3 + len(items), h, z, s, *(key for key, _ in items),
                value, "m", *(kind for _, kind in items), 3, 2,
            )
            assert reply == expected
            assert read[0::2] == [[b"f", value.encode()], [b"m", b"2.5"], b"2.5", value.encode(), None]
            assert read[1::2][:3] == [-1, -1, -1] and 0 < read[7] <= 60000 and read[9] == -2
    finally:
        client.delete(h, z, s)
        client.close()


def test_embedded_is_the_plain_name_of_use_mock(tmp_path):
    from memory import connect_redis_server, get_railway_redis

    for options in ({"embedded": True}, {"use_mock": True}):
        with RedisShortTermMemory(data_dir=str(tmp_path), key_prefix="names", **options) as memory:
            assert memory.mode == "embedded"
    assert get_railway_redis is connect_redis_server
    with pytest.raises(MemoryConfigException, match="neither client, url nor embedded"):
        connect_redis_server("127.0.0.1", embedded=True)
