"""The coordination layer on a Redis Cluster: its keys spread over the primaries (no slot holds
every team's or agent's signals, staged patterns or conflicts), a team workload gives the same
answers on one server and on a cluster, and claims hand each task to one agent under a race.

The cluster is the test Redis when it is one (``make test-cluster``), else a local cluster of
this module's own (tests/team_support.a_redis_cluster; those tests are slow).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from redis.cluster import RedisCluster, key_slot

from memory import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    AgentWorkspace,
    ConflictContext,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
    check_redis_connection,
    connect_redis_server,
    get_railway_redis,
    get_redis_memory,
)
from memory.team.collaboration import KEEP
from support import ON_CLUSTER, SINGLE_REDIS_URL, single_redis
from team_support import a_redis_cluster, cluster_client, delete_prefix, keys_per_primary
from tiers import cluster
from tiers.coordination.keys import PATTERN_BUCKETS, TeamKeys

VALIDATOR = AgentCredentials("architect", AccessTier.VALIDATOR)


def slow_without_a_cluster(test: Any) -> Any:
    """A test on a cluster: slow beside one server, where it starts a cluster of its own."""
    return test if ON_CLUSTER else pytest.mark.slow(test)


@pytest.fixture(scope="module")
def cluster_url():
    with a_redis_cluster() as url:
        yield url


@pytest.fixture
def on_cluster(cluster_url, tmp_path):
    """Memories on the cluster under a prefix of the test's own (its keys deleted afterwards)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    made: list[RedisShortTermMemory] = []

    def factory(**options: Any) -> RedisShortTermMemory:
        options.setdefault("key_prefix", prefix)
        options.setdefault("data_dir", str(tmp_path / "cluster"))
        memory = RedisShortTermMemory(cluster_url, **options)
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        memory.close()
    client = cluster_client(cluster_url)
    delete_prefix(client, prefix)
    client.close()


# -- the layout: which slot each feature's keys land in (no Redis needed) ------------------------------


def slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_no_slot_holds_every_teams_or_agents_signals_patterns_or_conflicts():
    keys = TeamKeys("tiermem")
    names = [f"agent-{n}" for n in range(200)]
    families = {
        "signals": [keys.inbox(name, "progress") for name in names] + [keys.cursor(name) for name in names],
        "staged patterns": [keys.staged(f"pattern-{n}") for n in range(200)],
        "conflicts": [keys.conflict(f"conflict-{n}") for n in range(200)],
        "tasks": [keys.team(name).tasks for name in names],
        "sessions": [keys.session(name)[0] for name in names],
        "collaboration": [keys.collab_index(name) for name in names],
    }
    thirds = lambda slot: slot * 3 // 16384  # noqa: E731 - the primaries of a cluster of three, slots split evenly
    for family, found in families.items():
        assert len(slots(found)) >= 16, f"{family}: {len(slots(found))} slots for 200 names"
        assert {thirds(slot) for slot in slots(found)} == {0, 1, 2}, f"{family} miss a third of the slots"
    assert len(slots([keys.bucket_index(bucket) for bucket in range(PATTERN_BUCKETS)])) == PATTERN_BUCKETS


def test_each_multi_key_call_stays_in_one_slot():
    keys = TeamKeys("tiermem")
    groups = [
        [keys.inbox("a", "t"), keys.inbox_types("a"), keys.bell("a"), keys.cursor("a"), keys.working("a", "k"),
         keys.collab_index("a"), keys.collab_state("a", "s")],
        [keys.broadcast("t"), keys.broadcast_types(), keys.listeners()],
        [keys.staged("p"), keys.staged_index("p"), keys.decision("p"), keys.promoted("p")],
        list(keys.session("s")),
        [keys.team("t").tasks, keys.team("t").queue("x"), keys.team("t").leases("x"), keys.team("t").agents],
    ]
    for group in groups:
        assert len(slots(group)) == 1, group


# -- on a cluster: the keys of many teams and agents on every primary ------------------------------------


@slow_without_a_cluster
def test_many_teams_and_agents_spread_their_keys_over_every_primary(on_cluster, cluster_url):
    memory = on_cluster()
    boss = AgentWorkspace("boss", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
    for n in range(60):
        AgentCoordinator(memory, f"team-{n}").add_task(AgentTask(f"task-{n}", "build"))
        boss.send_signal("progress", {"n": n}, target_agent=f"agent-{n}")
        boss.stage_pattern(StagedPattern(f"pattern-{n}", "boss", "kind", f"name {n}", "what"))
        boss.record_conflict(ConflictContext(f"conflict-{n}", {"a": {"position": 1}, "b": {"position": 2}}))
    client = cluster_client(cluster_url)
    try:
        root = memory.keys.root
        for family, match in (("tasks", f"{root}{{t:*}}:tasks"), ("signals", f"{root}{{a:*}}:in:progress"),
                              ("staged patterns", f"{root}{{p:*}}:staged:*"), ("conflicts", f"{root}{{c:*}}:conflict")):
            found = keys_per_primary(client, match)
            per_primary = {node: len(keys) for node, keys in found.items()}
            assert len(found) == 3 and all(per_primary.values()), f"{family}: keys per primary {per_primary}"
            assert sum(map(len, found.values())) == 60, family
            assert max(Counter(key_slot(key) for keys in found.values() for key in keys).values()) < 60, family
        assert memory.get_stats()["keys"] >= 4 * 60  # statistics count the keys of every primary
    finally:
        client.close()


# -- the same answers on one server and on a cluster -----------------------------------------------------


class StepClock:
    """A wall clock that moves 1 ms at every reading, from one fixed start: the same times in two runs."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now, self._lock = start, threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += 0.001
            return self.now


def team_workload(url: str, prefix: str, data_dir: str) -> dict[str, Any]:
    """Tasks claimed and completed by several threads in three teams, signals (targeted, broadcast,
    to a session), a session, staged, promoted and rejected patterns, conflicts, collaboration states
    and working memory; every answer that does not depend on thread timing."""
    memory = RedisShortTermMemory(url, key_prefix=prefix, data_dir=data_dir, clock=StepClock())
    answers: dict[str, Any] = {}
    try:
        teams = [AgentCoordinator(memory, f"crew-{n}") for n in range(3)]
        for team in teams:
            for n in range(40):
                team.add_task(AgentTask(f"job-{n}", "build" if n % 3 else "test", f"do {n}", priority=n % 5))
        done: list[tuple[str, str, str]] = []

        def work(agent: str) -> None:
            for team in teams:
                for kind in ("build", "test"):
                    while (task := team.claim_task(agent, kind)) is not None:
                        assert team.complete_task(task.task_id, {"by": agent}, agent_id=agent)
                        done.append((team.team_id, task.task_id, agent))

        threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        answers["completed"] = sorted((team, task) for team, task, _ in done)
        answers["pending"] = [[t.task_id for t in team.get_pending_tasks()] for team in teams]
        answers["aggregates"] = [{k: v for k, v in team.aggregate_results().items() if "agent" not in k} for team in teams]
        by_id = {team.team_id: team for team in teams}
        answers["results"] = sorted((team, task, (result := by_id[team].get_result(task))["task_type"],
                                     result["result"] == {"by": agent} and result["agent_id"] == agent)
                                    for team, task, agent in done)

        lead, helper = (AgentWorkspace(name, short_term_memory=memory) for name in ("lead", "helper"))
        boss = AgentWorkspace("boss", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
        for n in range(12):
            boss.send_signal(("plan", "note", "alert")[n % 3], {"n": n}, target_agent=None if n % 4 == 0 else "lead")
        room = TeamSession(memory, "review", "review the plan", credentials=VALIDATOR)
        for name in ("lead", "helper", "boss"):
            room.add_agent(name)
        room.share("plan", {"steps": [1, 2, 3]})
        room.signal("review_done", {"ok": True})
        answers["lead signals"] = [(s["signal_type"], s["data"], s["sender"], s["target"]) for s in lead.receive_signals()]
        answers["helper signals"] = [(s["signal_type"], s["data"], s["target"]) for s in helper.receive_signals()]
        answers["lead again"] = lead.receive_signals()
        info = room.get_info()
        answers["session"] = {**info, "created_at": None, "shared": room.get("plan")}

        for n in range(20):
            boss.stage_pattern(StagedPattern(f"pattern-{n}", "boss", "optimization", f"idea {n}", "why", confidence=n / 20))
        answers["staged"] = [p.pattern_id for p in boss.get_staged_patterns()]
        answers["promoted"] = [getattr(boss.promote_pattern(f"pattern-{n}"), "pattern_id", None) for n in range(0, 20, 2)]
        answers["rejected"] = [boss.reject_pattern(f"pattern-{n}", "not now") for n in range(1, 20, 4)]
        answers["staged after"] = [p.pattern_id for p in boss.get_staged_patterns()]
        answers["restaged"] = boss.stage_pattern(StagedPattern("pattern-0", "boss", "optimization", "again", "why"))
        answers["library"] = [p.pattern_id for p in boss.find_patterns(pattern_type="optimization")]

        for n in range(6):
            positions = {"ann": {"position": "ship", "confidence": 0.4 + n / 20, "weight": 2.0},
                         "ben": {"position": "wait", "confidence": 0.6}}
            boss.record_conflict(ConflictContext(f"conflict-{n}", positions, description=f"release {n}"))
        answers["conflicts"] = [boss.resolve_conflict(f"conflict-{n}", ("highest_confidence", "weighted")[n % 2]).resolution
                                | {"resolved_at": None} for n in range(6)]
        answers["conflict again"] = boss.get_conflict("conflict-0").resolution | {"resolved_at": None}

        for n in range(KEEP + 3):
            memory.persist_collaboration_state(VALIDATOR, f"session-{n}", {"trust_level": n / 200, "n": n})
        answers["restored"] = [memory.restore_collaboration_state(VALIDATOR),
                               memory.restore_collaboration_state(VALIDATOR, "session-3"),
                               memory.restore_collaboration_state(VALIDATOR, "session-2")]
        for n in range(10):
            lead.stash(f"key-{n}", {"n": n})
        answers["stashed"] = [lead.retrieve(f"key-{n}") for n in range(10)] + [helper.retrieve("key-3", agent_id="lead")]
        # the keys left (SCAN walks every primary), but a process's request slots (per thread)
        answers["keys"] = sorted(key.decode() for key in memory.client.scan_iter(match=f"{memory.keys.root}*", count=1000)
                                 if b":once:" not in key)
    finally:
        memory.close()
    return answers


@slow_without_a_cluster
def test_a_team_workload_gives_the_same_answers_on_one_server_and_on_a_cluster(cluster_url, tmp_path):
    single_redis().close()  # skips (or fails in CI) without the single server
    prefix = f"t{uuid.uuid4().hex[:12]}"
    runs = {}
    for name, url in (("one server", SINGLE_REDIS_URL), ("cluster", cluster_url)):
        try:
            runs[name] = team_workload(url, prefix, str(tmp_path / name.replace(" ", "-")))
        finally:
            client = cluster_client(url) if url == cluster_url else single_redis()
            delete_prefix(client, prefix)
            client.close()
    one, other = runs["one server"], runs["cluster"]
    assert one["completed"] == sorted((f"crew-{t}", f"job-{n}") for t in range(3) for n in range(40))  # each once
    assert one["restored"][0][0] == f"session-{KEEP + 2}" and one["restored"][2] is None  # the oldest were dropped
    assert len(one["lead signals"]) == 13 and one["lead again"] == []
    for what in one:
        assert one[what] == other[what], what


# -- claims under a race ---------------------------------------------------------------------------------


@slow_without_a_cluster
def test_racing_threads_on_a_cluster_never_get_one_task_twice(on_cluster):
    memory = on_cluster()
    teams = [AgentCoordinator(memory, f"race-{n}") for n in range(4)]
    for team in teams:
        for n in range(150):
            team.add_task(AgentTask(f"task-{n}", "work", priority=n % 7))
    claimed: list[tuple[str, str, str]] = []
    start = threading.Barrier(16)

    def race(agent: str) -> None:
        start.wait()
        for _ in range(200):
            for team in teams:
                for task in team.claim_tasks(agent, "work", 2):
                    claimed.append((team.team_id, task.task_id, agent))
                    assert team.complete_task(task.task_id, agent, agent_id=agent)

    threads = [threading.Thread(target=race, args=(f"agent-{n}",)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    tasks = [(team, task) for team, task, _ in claimed]
    assert len(tasks) == 4 * 150 and len(set(tasks)) == len(tasks)  # each task once, to one agent
    for team in teams:
        assert team.get_pending_tasks() == [] and team.aggregate_results()["total_completed"] == 150
        for team_id, task_id, agent in claimed:
            if team_id == team.team_id:
                assert team.get_result(task_id)["agent_id"] == agent


# -- the connection calls, given a cluster -------------------------------------------------------------


@slow_without_a_cluster
def test_every_way_to_connect_takes_a_cluster(cluster_url, tmp_path):
    host, port = cluster.parse_nodes(cluster_url.split("://", 1)[1])[0]
    node_url = f"redis://{host}:{port}/0"
    prefix = f"t{uuid.uuid4().hex[:12]}"
    assert check_redis_connection(cluster_url) and check_redis_connection(node_url)
    assert check_redis_connection(environ={"REDIS_URL": cluster_url})
    assert not check_redis_connection("redis+cluster://127.0.0.1:1")
    made = [get_redis_memory(environ={"REDIS_URL": cluster_url}, key_prefix=prefix, data_dir=str(tmp_path)),
            get_redis_memory(node_url, key_prefix=prefix, data_dir=str(tmp_path)),
            connect_redis_server(host, port, key_prefix=prefix, data_dir=str(tmp_path)),
            get_railway_redis(host, port, key_prefix=prefix, data_dir=str(tmp_path))]
    client = cluster_client(cluster_url)
    try:
        for n, memory in enumerate(made):
            assert isinstance(memory.client, RedisCluster) and memory.ping()
            for agent in range(20):
                AgentWorkspace(f"agent-{n}-{agent}", short_term_memory=memory).stash("note", n)
        for n in range(len(made)):  # each reads what another wrote
            assert AgentWorkspace(f"agent-{n}-3", short_term_memory=made[-1 - n]).retrieve("note") == n
        total = sum(node.dbsize() for node in cluster.primaries(client))
        assert made[0].get_stats()["keys"] == total  # every primary's keys, not one node's
        assert sum(map(len, keys_per_primary(client, f"{prefix}:*").values())) == 80
        assert made[0].get_capabilities()["multi_process"]
    finally:
        for memory in made:
            memory.close()
        delete_prefix(client, prefix)
        client.close()
