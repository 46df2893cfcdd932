"""The engine on a Redis Cluster: every way of naming one, the same answers as one server for
the same workload, agents spread over the primaries, and typed errors for a cluster that is not
there. (A primary killed under load: test_faults_cluster.py.)"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from memory import (
    AgentCoordinator,
    AgentMemoryAPI,
    AgentTask,
    AgentWorkspace,
    MemoryAPIException,
    MemoryConfig,
    MemoryConfigException,
    RedisShortTermMemory,
)
from support import SINGLE_REDIS_URL, single_redis
from team_support import delete_prefix
from tiers import cluster, transport

AGENTS = [f"sim-{i}" for i in range(40)]
STEPS = 120


def workload(seed: int = 3) -> list[list[dict[str, Any]]]:
    """Batches of one step each: a state per agent, now and then an action."""
    rng = random.Random(seed)
    batches = []
    for step in range(STEPS):
        batch = []
        for i, agent in enumerate(AGENTS):
            batch.append({"agent_id": agent, "step_number": step, "priority": round(rng.random(), 2),
                          "data": {"position": [i + rng.randint(-3, 3), step % 17], "health": rng.randint(0, 100),
                                   "goal": rng.choice(["gather", "trade", "rest"])}})
            if rng.random() < 0.25:
                batch.append({"agent_id": agent, "step_number": step, "memory_type": "action",
                              "data": {"action_type": "trade", "outcome": rng.choice(["success", "failure"])}})
        batches.append(batch)
    return batches


def answers(api: AgentMemoryAPI) -> dict[str, Any]:
    """Every query kind, reduced to what must be equal across deployments."""
    def ids(found: Any) -> list[Any]:
        return [(m["memory_id"], m["step_number"], m["tier"]) for m in found]

    out: dict[str, Any] = {"agents": api.list_agents()}
    for agent in AGENTS[::7]:
        out[agent] = {
            "range": ids(api.retrieve_by_time_range(agent, 30, 90)),
            "wins": ids(api.retrieve_by_attributes(agent, {"outcome": "success"}, memory_type="action")),
            "near": ids(api.retrieve_by_location(agent, [AGENTS.index(agent), 5], radius=4.0)),
            "important": ids(api.retrieve_most_important(agent, k=5)),
            "similar": ids(api.retrieve_similar_states(agent, {"position": [3, 3], "health": 50, "goal": "rest"}, k=5)),
        }
    statistics = api.get_memory_statistics()
    out["counts"] = {tier: found["count"] for tier, found in statistics["tiers"].items()}
    out["types"] = statistics["memory_type_distribution"]
    return out


def run(url: str, tmp_path: Any, name: str) -> dict[str, Any]:
    prefix = f"teq{uuid.uuid4().hex[:10]}"
    config = MemoryConfig(redis_url=url, key_prefix=prefix, data_dir=str(tmp_path / name), cleanup_interval=10**6,
                          stm_config={"memory_limit": 30}, im_config={"memory_limit": 50})
    with AgentMemoryAPI(config) as api:
        try:
            for step, batch in enumerate(workload()):
                api.store_many(batch, idempotency_key=f"step-{step}")  # ids follow from the key: equal everywhere
                if step % 40 == 39:
                    api.force_memory_maintenance()
            return json.loads(json.dumps(answers(api)))
        finally:
            for agent in AGENTS:
                api.clear_agent_memory(agent)


@pytest.mark.slow
def test_the_same_workload_gives_the_same_answers_on_one_server_and_on_a_cluster(local_cluster, tmp_path):
    on_one = run(SINGLE_REDIS_URL, tmp_path, "one")
    on_cluster = run(local_cluster, tmp_path, "cluster")
    assert on_one["counts"]["ltm"] > 0 and on_one["counts"]["im"] > 0  # every tier took part
    for key in on_one:
        assert on_cluster[key] == on_one[key], key


def test_every_way_of_naming_a_cluster_reaches_all_of_it(local_cluster, tmp_path):
    nodes = cluster.parse_nodes(local_cluster.split("://", 1)[1])
    host, port = nodes[0]
    prefix = f"tnm{uuid.uuid4().hex[:10]}"
    client = RedisCluster(host=host, port=port, protocol=2)
    ways = {
        "url": {"redis_url": local_cluster},
        "a node's plain url": {"redis_url": f"redis://{host}:{port}/0"},
        "cluster_nodes": {"cluster_nodes": [f"{host}:{port}"]},
        "client": {},
    }
    try:
        for step, (name, options) in enumerate(ways.items()):
            config = MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data"), **options)
            with AgentMemoryAPI(config, redis_client=client if name == "client" else None) as api:
                assert isinstance(api._connection.client, RedisCluster), name
                api.store_many([{"agent_id": agent, "data": {"way": name}, "step_number": step}
                                for agent in AGENTS])
                assert api.list_agents() == sorted(AGENTS), name
                assert [m["contents"]["way"] for m in api.retrieve_by_time_range(AGENTS[5], 0, 100)][-1] == name
        serving = {client.nodes_manager.get_node_from_slot(client.keyslot(f"{prefix}:{{{agent}}}:meta")).name
                   for agent in AGENTS}
        assert serving == {node.name for node in client.get_primaries()}  # agents spread over every primary
        with AgentMemoryAPI(MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data")), redis_client=client) as api:
            for agent in AGENTS:
                api.clear_agent_memory(agent)
    finally:
        client.delete(*client.scan_iter(match=f"{prefix}*"))
        client.close()


def test_redis_url_in_the_environment_names_a_cluster_too(local_cluster, tmp_path, monkeypatch):
    host, port = cluster.parse_nodes(local_cluster.split("://", 1)[1])[0]
    for url in (local_cluster, f"redis://{host}:{port}"):
        monkeypatch.setenv("REDIS_URL", url)
        with AgentMemoryAPI(MemoryConfig(key_prefix=f"tenv{uuid.uuid4().hex[:8]}", data_dir=str(tmp_path))) as api:
            assert isinstance(api._connection.client, RedisCluster) and api.mode == "redis", url
            assert api.get_memory_statistics()["agents"] == 0


@pytest.mark.parametrize("options, message", [
    ({"redis_url": "redis+cluster://127.0.0.1:1"}, "cannot reach the Redis Cluster"),
    ({"redis_url": "redis+cluster://127.0.0.1:notaport"}, "host:port"),
    ({"redis_url": "redis+cluster:///"}, "at least one node"),
    ({"cluster_nodes": ["127.0.0.1:7000"], "redis_url": "redis://127.0.0.1:6379/0"}, "not both"),
    ({"cluster_nodes": "127.0.0.1:7000"}, "a list"),
    ({"cluster_nodes": []}, "at least one node"),
    ({"wait_replicas": -1}, "wait_replicas"),
])
def test_a_cluster_that_is_not_there_or_badly_named_is_a_config_error(options, message, tmp_path):
    with pytest.raises(MemoryConfigException, match=message):
        AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), **options))


def test_a_database_other_than_0_on_a_cluster_node_is_refused(local_cluster, tmp_path):
    host, port = cluster.parse_nodes(local_cluster.split("://", 1)[1])[0]
    with pytest.raises(MemoryConfigException, match="database 0 only"):
        AgentMemoryAPI(MemoryConfig(redis_url=f"redis://{host}:{port}/3", data_dir=str(tmp_path)))
    with pytest.raises(MemoryConfigException, match="database 0 only"):
        AgentMemoryAPI(MemoryConfig(redis_url=f"redis+cluster://{host}:{port}/3", data_dir=str(tmp_path)))


def test_one_server_is_not_taken_for_a_cluster(tmp_path):
    with AgentMemoryAPI(MemoryConfig(redis_url=SINGLE_REDIS_URL, key_prefix=f"t{uuid.uuid4().hex[:8]}",
                                     data_dir=str(tmp_path))) as api:
        assert isinstance(api._connection.client, redis.Redis)


def test_writes_that_wait_for_a_replica_a_server_lacks_fail_typed_and_reads_still_answer(tmp_path, monkeypatch):
    """wait_replicas=1 on a server without replicas: no write is acknowledged, by the engine or
    the team layer, and each says so with a typed error; reads never wait."""
    monkeypatch.setattr(transport, "WAIT_MS", 50)
    prefix = f"tw{uuid.uuid4().hex[:8]}"
    with AgentMemoryAPI(MemoryConfig(redis_url=SINGLE_REDIS_URL, key_prefix=prefix, data_dir=str(tmp_path))) as api:
        api.store_agent_state("a", {"step": 1}, 1)
    memory = RedisShortTermMemory(SINGLE_REDIS_URL, key_prefix=prefix, data_dir=str(tmp_path), wait_replicas=1)
    try:
        with AgentMemoryAPI(MemoryConfig(redis_url=SINGLE_REDIS_URL, key_prefix=prefix, data_dir=str(tmp_path),
                                         wait_replicas=1)) as api:
            with pytest.raises(MemoryAPIException, match="replica"):
                api.store_agent_state("a", {"step": 2}, 2)
            assert [m["contents"]["step"] for m in api.retrieve_by_time_range("a", 0, 1)] == [1]
        team, worker = AgentCoordinator(memory, "crew"), AgentWorkspace("worker", short_term_memory=memory)
        for write in (lambda: team.add_task(AgentTask("job", "build", "do it")), lambda: team.claim_task("w", "build"),
                      lambda: team.register_agent("w", ["build"]), lambda: worker.stash("note", 1),
                      lambda: worker.send_signal("ping", {}, target_agent="lead")):
            with pytest.raises(MemoryAPIException, match="replica"):
                write()
        assert worker.retrieve("note") == 1  # it ran on the primary: not acknowledged is not undone
    finally:
        memory.close()
        delete_prefix(single_redis(), prefix)
    with pytest.raises(MemoryConfigException, match="wait_replicas"):
        RedisShortTermMemory(SINGLE_REDIS_URL, wait_replicas=65)


def node_ids(client: RedisCluster) -> dict[str, str]:
    """node name -> cluster node id, of the primaries."""
    return {node.name: client.get_redis_connection(node).execute_command("CLUSTER", "MYID").decode()
            for node in client.get_primaries()}


def move_slot(client: RedisCluster, slot: int, keys_first: bool) -> None:
    """Migrate ``slot`` to another primary as redis-cli --cluster reshard does: IMPORTING and
    MIGRATING, keys moved with MIGRATE, then the new owner announced. With ``keys_first`` the
    caller's next call comes between the key move and the announcement (an ASK)."""
    source = client.nodes_manager.get_node_from_slot(slot)
    target = next(node for node in client.get_primaries() if node.name != source.name)
    ids = node_ids(client)
    source_client, target_client = client.get_redis_connection(source), client.get_redis_connection(target)
    target_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.name])
    source_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.name])
    while keys := source_client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source_client.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
    if keys_first:
        return
    finish_move(client, slot, target.name)


def finish_move(client: RedisCluster, slot: int, target_name: str) -> None:
    target_id = node_ids(client)[target_name]
    for node in client.get_primaries():
        client.get_redis_connection(node).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


@pytest.mark.parametrize("when", ["moved", "asked"])
def test_an_agent_whose_slot_moves_is_served_on_without_an_error(local_cluster, tmp_path, when):
    """A slot migrating between primaries (a reshard): the engine follows MOVED once the move is
    announced, and ASK (then TRYAGAIN, which Redis answers a multi-key call while a slot's keys
    are split) while the keys are on the new primary but the move is not announced yet."""
    client = cluster.connect_url(local_cluster, socket_timeout=10, connect_timeout=2)
    prefix = f"tmv{uuid.uuid4().hex[:10]}"
    agent = f"mover-{when}"
    slot = client.keyslot(f"{prefix}:{{{agent}}}:meta")
    config = MemoryConfig(redis_url=local_cluster, key_prefix=prefix, data_dir=str(tmp_path / "data"))
    try:
        with AgentMemoryAPI(config) as api:
            api.store_many([{"agent_id": agent, "data": {"n": n}, "step_number": n} for n in range(20)])
            target = next(node.name for node in client.get_primaries()
                          if node.name != client.nodes_manager.get_node_from_slot(slot).name)
            move_slot(client, slot, keys_first=when == "asked")
            if when == "asked":  # multi-key calls get TRYAGAIN until the move is announced, 0.1 s later
                threading.Timer(0.1, finish_move, (client, slot, target)).start()
            api.store_many([{"agent_id": agent, "data": {"n": n}, "step_number": n} for n in range(20, 30)])
            api.store_agent_state(agent, {"n": 30}, 30)
            api._cache.clear()
            assert [m["contents"]["n"] for m in api.retrieve_by_time_range(agent, 0, 100)] == list(range(31))
            assert api.list_agents() == [agent]
            api.clear_agent_memory(agent)
    finally:
        client.delete(*client.scan_iter(match=f"{prefix}*"))
        client.close()
