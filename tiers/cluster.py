"""Redis Cluster: naming one, connecting to it, and which primary serves a command.

A cluster is named by a URL ``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://``
for TLS; user, password and query options as in a ``redis://`` URL), by a list of ``host:port``
seed nodes (``MemoryConfig.cluster_nodes``), or by a ``redis.cluster.RedisCluster`` the caller
made. A plain ``redis://`` URL that reaches a cluster node is used as the cluster that node
belongs to, never as a single server (which would answer MOVED for two thirds of the keys).

Every engine key carries a hash tag (one agent's keys, one team's, one session's share a slot),
so each script call runs on one primary; :func:`node_client` finds it from the call's first key.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from tiers.errors import MemoryConfigException

SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
DEFAULT_PORT = 6379


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def parse_nodes(nodes: Sequence[str] | str) -> list[tuple[str, int]]:
    """``"h1:p1,h2:p2"`` or ``["h1:p1", "h2:p2"]`` as (host, port) pairs."""
    items = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    pairs = []
    for item in (part.strip() for part in items):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(DEFAULT_PORT)
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise MemoryConfigException(f"a cluster node must be host:port, got {item!r}")
        pairs.append((host, int(port)))
    if not pairs:
        raise MemoryConfigException("a Redis Cluster needs at least one node (host:port)")
    return pairs


def connect_url(url: str, *, socket_timeout: float | None, connect_timeout: float,
                connection_class: type | None = None) -> RedisCluster:
    """A cluster client for ``redis+cluster://`` / ``rediss+cluster://`` URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MemoryConfigException(f"not a cluster URL: {url!r}")
    where = parts.netloc.rpartition("@")[2]
    options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    if parts.path.strip("/") not in ("", "0"):
        raise MemoryConfigException("a Redis Cluster has database 0 only; remove the database from the URL")
    return connect(parse_nodes(where), ssl=SCHEMES[scheme] or options.get("ssl") == "true",
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   socket_timeout=socket_timeout, connect_timeout=connect_timeout, connection_class=connection_class)


def connect(nodes: Sequence[tuple[str, int]], *, ssl: bool = False, username: str | None = None,
            password: str | None = None, socket_timeout: float | None = None,
            connect_timeout: float = 2.0, connection_class: type | None = None) -> RedisCluster:
    """A cluster client (RESP2, as the engine's single-node client) that has read the slot map;
    ``connection_class``: its nodes' redis-py connection class (the async API's green one)."""
    chosen: dict[str, Any] = {"ssl": ssl}
    if connection_class is not None:  # redis-py builds node clients on a pool of this class for a URL only
        if ssl:
            raise MemoryConfigException("the async API reaches a Redis Cluster over plain TCP, not TLS")
        first, port = nodes[0]
        chosen = {"connection_class": connection_class, "url": f"redis://{first}:{port}"}
    try:
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes], protocol=2,
                            username=username, password=password, socket_timeout=socket_timeout,
                            socket_connect_timeout=connect_timeout, **chosen)
    except (RedisError, RedisClusterException, OSError) as exc:
        shown = ",".join(f"{host}:{port}" for host, port in nodes)
        raise MemoryConfigException(f"cannot reach the Redis Cluster at {shown}: {exc}") from exc


def serves_a_cluster(client: redis.Redis) -> bool:
    """Whether a single-server client reached a node of a Redis Cluster (INFO cluster)."""
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except RedisError:  # a server without the section (or that refuses INFO) is no cluster node
        return False


def from_node(client: redis.Redis, *, socket_timeout: float | None, connect_timeout: float) -> RedisCluster:
    """The cluster a single-server client's node belongs to, with the same credentials."""
    kwargs = client.connection_pool.connection_kwargs
    return connect([(kwargs["host"], int(kwargs.get("port", DEFAULT_PORT)))],
                   ssl=issubclass(client.connection_pool.connection_class, redis.SSLConnection),
                   username=kwargs.get("username"), password=kwargs.get("password"),
                   socket_timeout=socket_timeout, connect_timeout=connect_timeout,
                   connection_class=_green_class(client))


def _green_class(client: redis.Redis) -> type | None:
    """The connection class of the async API's green client (tiers/async_bridge.py), for its
    cluster's nodes too; None for any other (the cluster client's default)."""
    chosen = client.connection_pool.connection_class
    return chosen if getattr(chosen, "green", False) else None


def primaries(client: RedisCluster) -> list[redis.Redis]:
    """A single-server client of each primary (for what must ask every one: SCAN, statistics)."""
    return [client.get_redis_connection(node) for node in client.get_primaries()]


class SlotMap:
    """Which primary serves a key, refreshed after a node failed or answered MOVED.

    One per cluster client. A refresh asks the nodes for the slot map again (``CLUSTER
    SLOTS``); while a failover is under way it may still name the dead primary, and the next
    refresh finds the promoted replica.
    """

    def __init__(self, client: RedisCluster):
        self.client = client
        self.stale = False
        self.last_error: BaseException | None = None  # why a primary last failed, for messages
        self._lock = threading.Lock()

    def node_client(self, key: Any) -> tuple[str, redis.Redis]:
        """(node name, its client) for the primary serving ``key``'s slot."""
        if self.stale:
            self.refresh()
        node = self.client.nodes_manager.get_node_from_slot(self.client.keyslot(key))
        return node.name, self.client.get_redis_connection(node)

    def node_named(self, name: str) -> redis.Redis:
        host, _, port = name.rpartition(":")
        node = self.client.nodes_manager.get_node(host, int(port))
        if node is None:
            self.refresh()
            node = self.client.nodes_manager.get_node(host, int(port)) or ClusterNode(host, int(port))
        return self.client.get_redis_connection(node)

    def refresh(self) -> None:
        with self._lock:
            try:
                self.client.nodes_manager.initialize()
                self.stale = False
            except (RedisError, RedisClusterException, OSError):
                self.stale = True  # no node answered: try again on the next call


_MAPS: weakref.WeakKeyDictionary[RedisCluster, SlotMap] = weakref.WeakKeyDictionary()
_MAPS_LOCK = threading.Lock()


def slot_map(client: RedisCluster) -> SlotMap:
    """The slot map of ``client`` (one per client, made on first use)."""
    found = _MAPS.get(client)
    if found is None:
        with _MAPS_LOCK:
            found = _MAPS.setdefault(client, SlotMap(client))
    return found
