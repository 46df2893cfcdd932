"""A primary of a Redis Cluster SIGKILLed under a store and claim workload (3 primaries + 3
replicas of the test's own): typed errors while the slots have no primary, service again within
10 s of a replica's promotion, and with ``wait_replicas=1`` no acknowledged write lost and no
task handed to two agents."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis.cluster

from cluster_support import LocalCluster
from fault_support import worker_port
from memory import AgentCoordinator, AgentMemoryAPI, AgentTask, MemoryAPIException, MemoryConfig, RedisShortTermMemory
from support import unavailable
from tiers.coordination.keys import TeamKeys

AGENTS = [f"agent-{i}" for i in range(30)]
TEAMS = [f"crew-{i}" for i in range(9)]
WORKERS = [f"worker-{i}" for i in range(3)]
TASKS_PER_TEAM = 1_000  # ~3x what the workers claim in the test's time: every claim finds one
SERVES_AGAIN_WITHIN = 10.0  # seconds after the promotion
KILLED = "{agent-3}"  # the key whose primary is killed
PORT = worker_port(7621)  # the test's own cluster: PORT .. PORT + 5


@pytest.fixture
def own_cluster():
    try:
        started = LocalCluster(PORT)
    except RuntimeError as exc:
        unavailable(f"a local Redis Cluster (redis-server, redis-cli, ports {PORT}-{PORT + 5})", exc)
    yield started
    started.stop()


class Load:
    """Threads repeating one call until stopped, logging when each was acknowledged or failed
    typed; an untyped error stops its thread (and fails the test)."""

    def __init__(self, workers: list[str]):
        self.log: list[tuple[float, bool]] = []  # (when, acknowledged)
        self.untyped: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(worker,)) for worker in workers]
        for thread in self.threads:
            thread.start()

    def once(self, worker: str) -> None:
        raise NotImplementedError

    def _run(self, worker: str) -> None:
        while not self.stop.is_set():
            try:
                self.once(worker)
            except MemoryAPIException:
                self.log.append((time.monotonic(), False))
                time.sleep(0.05)
                continue
            except BaseException as exc:  # noqa: BLE001 - the test fails on any untyped error
                self.untyped.append(exc)
                return
            self.log.append((time.monotonic(), True))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def first_acknowledged_after(self, moment: float) -> float | None:
        return next((when - moment for when, ok in self.log if when > moment and ok), None)


class StoreLoad(Load):
    """A thread storing a state for every agent per step, recording what was acknowledged."""

    def __init__(self, api: AgentMemoryAPI):
        self.api = api
        self.acknowledged: dict[int, list[str]] = {}
        self.steps = itertools.count(1)
        super().__init__(["store"])

    def once(self, worker: str) -> None:
        step = next(self.steps)
        ids = self.api.store_many([{"agent_id": agent, "data": {"step": step}, "step_number": step} for agent in AGENTS])
        self.acknowledged[step] = ids


class ClaimLoad(Load):
    """Worker threads claiming and completing a task of each team in turn, recording what was
    acknowledged: each claim's task and claimer, each completion."""

    def __init__(self, memory: RedisShortTermMemory, queued_by: RedisShortTermMemory):
        """``queued_by``: the memory that queues the tasks first (without waiting for replicas:
        they are replicated long before the kill)."""
        for team in TEAMS:
            queue = AgentCoordinator(queued_by, team)
            for number in range(TASKS_PER_TEAM):
                queue.add_task(AgentTask(f"job-{number}", "job", f"do {number}"))
        self.teams = [AgentCoordinator(memory, team, lease_seconds=3600) for team in TEAMS]
        self.turns = itertools.cycle(self.teams)
        self.claimed: list[tuple[str, str, str]] = []  # (team, task, worker), acknowledged
        self.completed: list[tuple[str, str, str]] = []
        super().__init__(WORKERS)

    def once(self, worker: str) -> None:
        team = next(self.turns)
        task = team.claim_task(worker, "job")
        assert task is not None, f"{team.team_id} ran out of tasks"
        self.claimed.append((team.team_id, task.task_id, worker))
        assert team.complete_task(task.task_id, {"by": worker}, agent_id=worker)
        self.completed.append((team.team_id, task.task_id, worker))


def engine(started: LocalCluster, tmp_path: Any, wait_replicas: int) -> AgentMemoryAPI:
    return AgentMemoryAPI(MemoryConfig(redis_url=started.url, key_prefix=f"fo{wait_replicas}",
                                       data_dir=str(tmp_path / f"w{wait_replicas}"), wait_replicas=wait_replicas,
                                       redis_timeout=2.0, cleanup_interval=10**6))


def team_memory(started: LocalCluster, tmp_path: Any, wait_replicas: int) -> RedisShortTermMemory:
    return RedisShortTermMemory(started.url, key_prefix="foc", data_dir=str(tmp_path / "team"),
                                wait_replicas=wait_replicas)


def teams_on_the_primary_of(started: LocalCluster, key: str) -> list[str]:
    """The teams whose tasks live on the primary that serves ``key``."""
    slot = lambda name: redis.cluster.key_slot(name.encode())  # noqa: E731
    (primary,) = [port for port in started.primary_ports() if started.client(port).serves(slot(key))]
    keys = TeamKeys("foc")
    return [team for team in TEAMS if started.client(primary).serves(slot(keys.team(team).tasks))]


def kill_under_load(started: LocalCluster, loads: list[Any], restart: bool) -> tuple[float, list[float | None]]:
    """Kill the primary serving KILLED two seconds into the loads; (seconds to its replica's
    promotion, for each load the seconds from the promotion to its next acknowledged call)."""
    time.sleep(2)
    killed_at = time.monotonic()
    port = started.kill_primary_of(KILLED)
    promoted = started.wait_until_promoted(port)
    if restart:  # it rejoins as a replica of the promoted one: writes can reach a replica again
        started.restart(port)
    time.sleep(SERVES_AGAIN_WITHIN + 2)
    for load in loads:
        load.finish()
    return promoted, [load.first_acknowledged_after(killed_at + promoted) for load in loads]


def missing_acknowledged(api: AgentMemoryAPI, load: StoreLoad) -> int:
    held = {agent: {m["memory_id"] for m in api.retrieve_by_time_range(agent, 0, 10**9)} for agent in AGENTS}
    return sum(1 for ids in load.acknowledged.values() for agent, memory_id in zip(AGENTS, ids)
               if memory_id not in held[agent])


@pytest.mark.slow
def test_a_killed_primary_loses_no_write_acknowledged_by_a_replica_and_service_resumes(own_cluster, tmp_path):
    killed_teams = teams_on_the_primary_of(own_cluster, KILLED)
    assert killed_teams, "no team's tasks live on the primary the test kills"
    memory, queued_by = team_memory(own_cluster, tmp_path, wait_replicas=1), team_memory(own_cluster, tmp_path, 0)
    try:
        with engine(own_cluster, tmp_path, wait_replicas=1) as api:
            stores, claims = StoreLoad(api), ClaimLoad(memory, queued_by)
            promoted, resumed = kill_under_load(own_cluster, [stores, claims], restart=True)
            assert stores.untyped == [] and claims.untyped == []
            for load in (stores, claims):
                assert any(not ok for _, ok in load.log), f"the kill went unnoticed by {type(load).__name__}"
            assert all(after is not None and after <= SERVES_AGAIN_WITHIN for after in resumed), (promoted, resumed)
            assert len(stores.acknowledged) > 20
            assert missing_acknowledged(api, stores) == 0
            held = {team for team, _, _ in claims.claimed}
            assert set(killed_teams) <= held
            handed = Counter((team, task) for team, task, _ in claims.claimed)
            assert [claim for claim, times in handed.items() if times > 1] == []  # no task handed out twice
            by_team = {team.team_id: team for team in claims.teams}
            lost = [(team, task) for team, task, worker in claims.completed
                    if (by_team[team].get_result(task) or {}).get("agent_id") != worker]
            assert lost == []  # every acknowledged completion kept, with its worker
    finally:
        memory.close()
        queued_by.close()


@pytest.mark.slow
def test_without_waiting_for_replicas_service_resumes_once_a_replica_is_promoted(own_cluster, tmp_path):
    """wait_replicas=0 (the default): the promoted replica serves at once, while writes it had
    not received yet are lost (Redis's asynchronous replication; no restart needed)."""
    with engine(own_cluster, tmp_path, wait_replicas=0) as api:
        load = StoreLoad(api)
        promoted, (resumed,) = kill_under_load(own_cluster, [load], restart=False)
        assert load.untyped == []
        assert resumed is not None and resumed <= SERVES_AGAIN_WITHIN, (promoted, resumed)
        for agent in AGENTS:  # every query answers again, from every primary
            assert api.retrieve_by_time_range(agent, 0, 10**9)
