"""RedisMemoryManager on a Redis Cluster: named by a ``redis+cluster://`` URL, by the plain URL of
one of its nodes, or by an async cluster client passed in; conversations spread over the primaries
and answer as on one server.

The cluster is the test Redis when it is one (``make test-cluster``), else a local cluster of this
module's own (tests/team_support.a_redis_cluster; the tests are slow then).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from memory.conversation import RedisMemoryManager, create_memory_agent
from support import ON_CLUSTER
from team_support import a_redis_cluster, cluster_client, delete_prefix, keys_per_primary
from tiers import cluster

pytestmark = [] if ON_CLUSTER else [pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_url():
    with a_redis_cluster() as url:
        yield url


@pytest.fixture
def prefix(cluster_url):
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    client = cluster_client(cluster_url)
    delete_prefix(client, name)
    client.close()


def node_url(cluster_url: str) -> str:
    host, port = cluster.parse_nodes(cluster_url.split("://", 1)[1])[0]
    return f"redis://{host}:{port}/0"


@pytest.mark.parametrize("named_by", ["cluster URL", "node URL"])
async def test_conversations_spread_over_the_primaries_and_read_back(cluster_url, prefix, named_by):
    url = cluster_url if named_by == "cluster URL" else node_url(cluster_url)
    manager = RedisMemoryManager(url, key_prefix=prefix)
    try:
        for n in range(30):
            assert await manager.store({"conversation_id": f"c-{n}", "working_memory": f"notes {n}"})
        for n in range(30):
            found = await manager.get(f"c-{n}")
            assert (found.working_memory, found.version) == (f"notes {n}", 1)
        assert 86_000 < await manager.ttl_remaining("c-7") <= 86_400
        assert await manager.delete("c-7") and await manager.get("c-7") is None
    finally:
        await manager.close()
    client = cluster_client(cluster_url)
    try:
        found = keys_per_primary(client, f"{prefix}:conversation:{{c-*}}")  # the hashes, not the request keys
        assert len(found) == 3 and all(found.values()) and sum(map(len, found.values())) == 29
    finally:
        client.close()


async def test_a_cluster_client_passed_in_is_used_and_left_open(cluster_url, prefix):
    host, port = cluster.parse_nodes(cluster_url.split("://", 1)[1])[0]
    client = AsyncRedisCluster(startup_nodes=[ClusterNode(host, port)])
    try:
        first, second = (RedisMemoryManager(client=client, key_prefix=prefix) for _ in range(2))
        await first.store({"conversation_id": "shared", "working_memory": "one"})
        assert (await second.get("shared")).working_memory == "one"
        await first.close()
        assert await client.ping()  # the caller's client stays open
        await second.close()
    finally:
        await client.aclose()


async def test_concurrent_writers_on_a_cluster_never_overwrite_each_others_turns(cluster_url, prefix):
    agent = create_memory_agent({"memory_type": "redis", "redis_url": cluster_url, "key_prefix": prefix})
    managers = [RedisMemoryManager(cluster_url, key_prefix=prefix) for _ in range(3)]
    try:
        await agent.memory_manager.store({"conversation_id": "busy", "working_memory": ""})

        async def add(manager: RedisMemoryManager, text: str) -> None:
            await manager.update("busy", lambda memory: memory.with_turn(text, memory.working_memory + text, 1.0, 1000))

        await asyncio.gather(*(add(managers[n % 3], f"m{n}") for n in range(30)))
        found = await agent.memory_manager.get("busy")
        assert sorted(turn.message for turn in found.turns) == sorted(f"m{n}" for n in range(30))
    finally:
        for manager in managers:
            await manager.close()
        await agent.close()
