"""The agent registry (tiers/registry.py): list_agents, statistics and all-agent maintenance find
every agent without SCAN, across engines, processes and (on a cluster) primaries."""

from __future__ import annotations

from tiers import cluster
from tiers.keys import KeySchema
from tiers.registry import REGISTRY_SHARDS, AgentRegistry

AGENTS = [f"agent-{i}" for i in range(60)]


def store_each(api, agents, step=1):
    api.store_many([{"agent_id": agent, "data": {"at": step}, "step_number": step} for agent in agents])


def registry_keys(prefix):
    keys = KeySchema(prefix)
    return [keys.registry(shard) for shard in range(REGISTRY_SHARDS)] + [keys.registry_built()]


def test_every_engine_lists_the_agents_every_engine_stored(make_api):
    first, second = make_api(), make_api()
    store_each(first, AGENTS[:30])
    store_each(second, AGENTS[30:])
    first.store_agent_state("solo", {"at": 2}, 2)

    expected = sorted([*AGENTS, "solo"])
    assert first.list_agents() == second.list_agents() == expected
    assert first.get_memory_statistics()["agents"] == len(expected)
    assert first.force_memory_maintenance().agents == len(expected)


def test_a_prefix_written_before_the_registry_is_listed_whole_and_registered(make_api, redis_client, prefix):
    api = make_api()
    store_each(api, AGENTS)
    redis_client.delete(*registry_keys(prefix))  # as a prefix an engine without the registry wrote

    assert make_api().list_agents() == sorted(AGENTS)
    assert redis_client.get(KeySchema(prefix).registry_built()) is not None
    registered = AgentRegistry(redis_client, KeySchema(prefix))
    assert sorted({m.decode() for key in registry_keys(prefix)[:-1] for m in redis_client.smembers(key)}) == \
        sorted(AGENTS) == registered.agents()


def test_a_cleared_agent_is_no_longer_listed_and_comes_back_when_it_stores(api):
    store_each(api, AGENTS[:3])
    api.clear_agent_memory("agent-1")
    assert api.list_agents() == ["agent-0", "agent-2"]
    api.store_agent_state("agent-1", {"at": 5}, 5)
    assert api.list_agents() == ["agent-0", "agent-1", "agent-2"]


def test_agents_are_found_after_redis_lost_the_registry(make_api, redis_client, prefix):
    """The engine registered its agents already; Redis loses every key (a flush): what is stored
    afterwards is still listed, the registry rebuilt by SCAN."""
    api = make_api()
    store_each(api, AGENTS[:5])
    redis_client.delete(*redis_client.scan_iter(match=f"{prefix}:*"))
    store_each(api, AGENTS[:2], step=2)
    assert api.list_agents() == AGENTS[:2]


def test_the_registry_spreads_over_its_shards_and_a_clusters_primaries(api, redis_client, prefix):
    store_each(api, AGENTS)
    keys = registry_keys(prefix)[:-1]
    sizes = [redis_client.scard(key) for key in keys]
    assert sum(sizes) == len(AGENTS) and sum(1 for size in sizes if size) >= REGISTRY_SHARDS // 2
    if cluster.is_cluster(redis_client):
        serving = {redis_client.nodes_manager.get_node_from_slot(redis_client.keyslot(key)).name for key in keys}
        assert serving == {node.name for node in redis_client.get_primaries()}
