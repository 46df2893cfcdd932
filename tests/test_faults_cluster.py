"""A primary of a Redis Cluster SIGKILLed under a store workload (3 primaries + 3 replicas of the
test's own): typed errors while the slots have no primary, service again within 10 s of a
replica's promotion, and with ``wait_replicas=1`` no acknowledged write lost."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cluster_support import LocalCluster
from memory import AgentMemoryAPI, MemoryAPIException, MemoryConfig
from support import unavailable

AGENTS = [f"agent-{i}" for i in range(30)]
SERVES_AGAIN_WITHIN = 10.0  # seconds after the promotion


@pytest.fixture
def own_cluster():
    try:
        started = LocalCluster(7621)
    except RuntimeError as exc:
        unavailable("a local Redis Cluster (redis-server, redis-cli, ports 7621-7626)", exc)
    yield started
    started.stop()


class StoreLoad:
    """A thread storing a state for every agent per step, recording what was acknowledged."""

    def __init__(self, api: AgentMemoryAPI):
        self.api = api
        self.acknowledged: dict[int, list[str]] = {}
        self.log: list[tuple[float, bool]] = []  # (when, acknowledged)
        self.untyped: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            try:
                ids = self.api.store_many([{"agent_id": agent, "data": {"step": step}, "step_number": step}
                                           for agent in AGENTS])
            except MemoryAPIException:
                self.log.append((time.monotonic(), False))
                time.sleep(0.05)
                continue
            except BaseException as exc:  # noqa: BLE001 - the test fails on any untyped error
                self.untyped.append(exc)
                return
            self.acknowledged[step] = ids
            self.log.append((time.monotonic(), True))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)

    def first_acknowledged_after(self, moment: float) -> float | None:
        return next((when - moment for when, ok in self.log if when > moment and ok), None)


def engine(started: LocalCluster, tmp_path: Any, wait_replicas: int) -> AgentMemoryAPI:
    return AgentMemoryAPI(MemoryConfig(redis_url=started.url, key_prefix=f"fo{wait_replicas}",
                                       data_dir=str(tmp_path / f"w{wait_replicas}"), wait_replicas=wait_replicas,
                                       redis_timeout=2.0, cleanup_interval=10**6))


def kill_under_load(started: LocalCluster, load: StoreLoad, restart: bool) -> tuple[float, float | None]:
    """Kill the primary serving agent-3 two seconds into the load; (seconds to its replica's
    promotion, seconds from the promotion to the next acknowledged store)."""
    time.sleep(2)
    killed_at = time.monotonic()
    port = started.kill_primary_of("{agent-3}")
    promoted = started.wait_until_promoted(port)
    if restart:  # it rejoins as a replica of the promoted one: writes can reach a replica again
        started.restart(port)
    time.sleep(SERVES_AGAIN_WITHIN + 2)
    load.finish()
    return promoted, load.first_acknowledged_after(killed_at + promoted)


def missing_acknowledged(api: AgentMemoryAPI, load: StoreLoad) -> int:
    held = {agent: {m["memory_id"] for m in api.retrieve_by_time_range(agent, 0, 10**9)} for agent in AGENTS}
    return sum(1 for ids in load.acknowledged.values() for agent, memory_id in zip(AGENTS, ids)
               if memory_id not in held[agent])


@pytest.mark.slow
def test_a_killed_primary_loses_no_write_acknowledged_by_a_replica_and_service_resumes(own_cluster, tmp_path):
    with engine(own_cluster, tmp_path, wait_replicas=1) as api:
        load = StoreLoad(api)
        promoted, resumed = kill_under_load(own_cluster, load, restart=True)
        assert load.untyped == []
        assert any(not ok for _, ok in load.log), "the kill went unnoticed: no store failed"
        assert resumed is not None and resumed <= SERVES_AGAIN_WITHIN, (promoted, resumed)
        assert len(load.acknowledged) > 20
        assert missing_acknowledged(api, load) == 0


@pytest.mark.slow
def test_without_waiting_for_replicas_service_resumes_once_a_replica_is_promoted(own_cluster, tmp_path):
    """wait_replicas=0 (the default): the promoted replica serves at once, while writes it had
    not received yet are lost (Redis's asynchronous replication; no restart needed)."""
    with engine(own_cluster, tmp_path, wait_replicas=0) as api:
        load = StoreLoad(api)
        promoted, resumed = kill_under_load(own_cluster, load, restart=False)
        assert load.untyped == []
        assert resumed is not None and resumed <= SERVES_AGAIN_WITHIN, (promoted, resumed)
        for agent in AGENTS:  # every query answers again, from every primary
            assert api.retrieve_by_time_range(agent, 0, 10**9)
