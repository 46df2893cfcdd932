"""What the coordination layer asks of the Redis connection itself: clients it builds, whether a
server answers, and what the server says about itself. (Which Redis to use is tiers/connection.py's.)
"""

from __future__ import annotations

import functools
from typing import Any

import redis
import redis.cluster
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.engine import Engine

from tiers import cluster
from tiers.errors import MemoryConfigException
from tiers.failures import reading

CLIENT_TYPES: tuple[type, ...] = (redis.Redis, redis.cluster.RedisCluster)  # clients a caller may pass in
ENGINE_TYPES: tuple[type, ...] = (Engine,)  # SQL engines a caller may pass in


def server_client(host: str, port: int, password: str | None, db: int, ssl: bool) -> Any:
    """A client of the Redis at ``host:port`` (RESP2, as the engine's own). A server that answers
    as a Redis Cluster node gives a client of its cluster (database 0 only); one that does not
    answer now gives a plain client that connects on first use."""
    client = redis.Redis(host=host, port=port, password=password, db=db, ssl=ssl, protocol=2, socket_connect_timeout=5)
    probe = redis.Redis(host=host, port=port, password=password, db=db, ssl=ssl, protocol=2,
                        socket_connect_timeout=1, socket_timeout=2)
    try:
        if not cluster.serves_a_cluster(probe):  # unreachable too: the first operation says so
            return client
        client.close()
        if db:
            raise MemoryConfigException(f"{host}:{port} is a Redis Cluster node, and a cluster has database 0 only")
        return cluster.from_node(probe, socket_timeout=None, connect_timeout=5)
    finally:
        probe.close()


def answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url`` within a second (False for a URL nothing can reach);
    for a Redis Cluster (``redis+cluster://``), whether its nodes answer."""
    if cluster.is_cluster_url(url):
        try:
            nodes = cluster.connect_url(url, socket_timeout=1, connect_timeout=1)
        except (MemoryConfigException, RedisClusterException):  # no node answered (or a bad node list)
            return False
        try:
            return pings(nodes)
        finally:
            nodes.close()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, protocol=2)
    except ValueError:
        return False
    try:
        return pings(client)
    except ValueError:  # a host no resolver takes (UnicodeError)
        return False
    finally:
        client.close()


def pings(client: Any) -> bool:
    """Whether ``client``'s Redis answers PING."""
    try:
        return bool(client.ping())
    except RedisError:
        return False


def server_stats(client: Any, embedded: bool) -> dict[str, Any]:
    """``keys`` in the client's database and, on a Redis server, ``memory_used`` (human) and
    ``memory_used_bytes``; on a Redis Cluster the sums over its primaries."""
    servers = cluster.primaries(client) if cluster.is_cluster(client) else [client]
    stats: dict[str, Any] = {"keys": sum(int(reading("redis", server.dbsize)) for server in servers)}
    if not embedded:
        infos = [reading("redis", functools.partial(server.info, "memory")) for server in servers]
        if len(infos) == 1:
            stats["memory_used"], stats["memory_used_bytes"] = infos[0].get("used_memory_human"), infos[0].get("used_memory")
        else:
            total = sum(int(info.get("used_memory", 0)) for info in infos)
            stats["memory_used"], stats["memory_used_bytes"] = _human(total), total
    return stats


def _human(size: int) -> str:
    """Bytes as Redis's used_memory_human writes them (1.50M)."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f}{unit}"
    return f"{size}B"


def saves_to_disk(client: Any) -> bool | None:
    """Whether the Redis server saves to disk (RDB or AOF); None if it will not say."""
    try:
        config = client.config_get("save") | client.config_get("appendonly")
    except RedisError:
        return None
    save = config.get("save") or config.get(b"save") or b""
    aof = config.get("appendonly") or config.get(b"appendonly") or b"no"
    as_text = lambda value: value.decode() if isinstance(value, bytes) else str(value)  # noqa: E731
    return bool(as_text(save).strip()) or as_text(aof) == "yes"
