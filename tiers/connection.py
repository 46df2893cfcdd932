"""Where Redis comes from: the one place that reads ``REDIS_URL``.

Resolution order: an explicit client; an explicit URL (the engine passes the one its config
names, ``""`` forcing the embedded engine); the ``REDIS_URL`` environment variable (empty forces
embedded); a Redis answering on localhost:6379; the embedded engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

from tiers import async_bridge, cluster, embedded
from tiers.errors import MemoryConfigException

LOCAL_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Connection:
    client: Any
    mode: str  # "redis" or "embedded"
    where: str  # a URL or the data directory, for statistics and messages
    embedded_server: embedded.EmbeddedServer | None = None
    owned: bool = True  # False for a client the caller passed in: the caller closes it

    def describe(self) -> str:
        """Where Redis is, for messages: a URL, the embedded engine's data directory, or the
        host and port of a client the caller passed in."""
        if self.where != "explicit client":
            return self.where if self.mode == "redis" else f"embedded ({self.where})"
        if cluster.is_cluster(self.client):
            return "redis+cluster://" + ",".join(node.name for node in self.client.get_primaries())
        kwargs = getattr(getattr(self.client, "connection_pool", None), "connection_kwargs", {})
        if "host" in kwargs:
            return f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
        return f"a {type(self.client).__name__} client"

    def close(self) -> None:
        if self.embedded_server is not None:
            embedded.release(self.embedded_server)
            self.embedded_server = None
        if self.owned:
            try:
                self.client.close()
            except RedisError:
                pass


def _check_client(client: Any) -> None:
    if cluster.is_cluster(client):
        kwargs = client.get_connection_kwargs()
    else:
        kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise MemoryConfigException("the Redis client must be created with decode_responses=False")


def _connect(url: str, explicit: bool, socket_timeout: float | None, connection_class: type | None = None
             ) -> Connection | None:
    connect_timeout = 2 if explicit else 0.25
    chosen: dict[str, Any] = {} if connection_class is None else {"connection_class": connection_class}
    if cluster.is_cluster_url(url):
        return Connection(cluster.connect_url(url, socket_timeout=socket_timeout, connect_timeout=connect_timeout,
                                              **chosen), "redis", url)
    try:
        # RESP2: redis-py's RESP3 path re-parses every sorted-set score through text
        client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, protocol=2,
                                      socket_timeout=socket_timeout, **chosen)
        client.ping()
    except (RedisError, ValueError) as exc:
        if "cluster mode" in str(exc):  # SELECT of a database other than 0 on a cluster node
            raise MemoryConfigException(f"{url} is a Redis Cluster node, and a cluster has database 0 only") from exc
        if explicit:
            raise MemoryConfigException(f"cannot reach Redis at {url}: {exc}") from exc
        return None
    _check_client(client)
    if cluster.serves_a_cluster(client):  # a node of a cluster: use the whole cluster, never the one node
        if client.connection_pool.connection_kwargs.get("db", 0):
            client.close()
            raise MemoryConfigException(f"{url} is a Redis Cluster node, and a cluster has database 0 only")
        nodes = cluster.from_node(client, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        client.close()
        return Connection(nodes, "redis", url)
    return Connection(client, "redis", url)



def _embedded(data_dir: str) -> Connection:
    try:
        server = embedded.acquire(data_dir)
    except (embedded.DataDirectoryBusy, embedded.SnapshotUnreadable) as exc:
        raise MemoryConfigException(str(exc)) from exc
    return Connection(server.client(), "embedded", str(server.data_dir), server)


def resolve(
    *, data_dir: str, url: str | None = None, client: Any = None, environ: Mapping[str, str] | None = None,
    socket_timeout: float | None = None, connection_class: type | None = None,
) -> Connection:
    """Connect to the Redis named by ``client``, ``url`` or the environment, else embedded.
    ``socket_timeout``: seconds a client made here waits for a reply (None: for ever);
    ``connection_class``: the redis-py connection class of a client made here (the async API's
    green one, tiers/async_bridge.py; it speaks plain TCP only)."""
    environ = os.environ if environ is None else environ
    if client is not None:
        _check_client(client)
        mode = "embedded" if type(client).__module__.startswith("fakeredis") else "redis"
        return Connection(client, mode, "explicit client", owned=False)
    if url is None and "REDIS_URL" in environ:
        url = environ["REDIS_URL"]
    if url and connection_class is not None:
        async_bridge.check_url(url)
    if url is not None:
        return (_embedded(data_dir) if url == ""
                else _connect(url, True, socket_timeout, connection_class))  # type: ignore[return-value]
    return _connect(LOCAL_URL, False, socket_timeout, connection_class) or _embedded(data_dir)
