"""What the coordination layer asks of the Redis connection itself: clients it builds, whether a
server answers, and what the server says about itself. (Which Redis to use is tiers/connection.py's.)
"""

from __future__ import annotations

from typing import Any

import redis
import redis.cluster
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from tiers.failures import reading

CLIENT_TYPES: tuple[type, ...] = (redis.Redis, redis.cluster.RedisCluster)  # clients a caller may pass in
ENGINE_TYPES: tuple[type, ...] = (Engine,)  # SQL engines a caller may pass in


def server_client(host: str, port: int, password: str | None, db: int, ssl: bool) -> Any:
    """A client of the Redis at ``host:port`` (RESP2, as the engine's own); it connects on first use."""
    return redis.Redis(host=host, port=port, password=password, db=db, ssl=ssl, protocol=2, socket_connect_timeout=5)


def answers(url: str) -> bool:
    """Whether a Redis answers PING at ``url`` within a second (False for a URL nothing can reach)."""
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
    ``memory_used_bytes``."""
    stats: dict[str, Any] = {"keys": int(reading("redis", client.dbsize))}
    if not embedded:
        info = reading("redis", lambda: client.info("memory"))
        stats["memory_used"] = info.get("used_memory_human")
        stats["memory_used_bytes"] = info.get("used_memory")
    return stats


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
