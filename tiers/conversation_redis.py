"""Conversations in Redis: one hash per conversation, written by a compare-and-set script.

Key schema (this module is the only one that builds these names):

    <prefix>:conversation:{<id>}                    hash   version      writes so far (the CAS token)
                                                           working_memory
                                                           turn_count   turns applied so far
                                                           turns        JSON [[number, message, unix time], ...]
                                                           updated_at   unix time of the last write
    <prefix>:conversation:{<id>}:request:<request>  string the version one write request made; PX
                                                           REQUEST_KEPT_MS

The hash tag keeps both keys of a conversation in one Cluster slot. The hash's TTL restarts at
every write. On a Redis Cluster (a ``redis+cluster://`` URL, a
``redis.asyncio.cluster.RedisCluster`` passed in, or a plain URL or client whose server turns out,
at first use, to be a cluster node) each call goes to the primary serving the conversation's slot.
A write is one call of tiers/lua/conversation_cas.lua, which compares the version and writes in
one atomic step, so writers in any number of processes never overwrite each other's turns.

A write whose reply is lost is sent once more (tiers/async_calls.py). It carries a request id:
the first call that ran left the version it wrote under the request key, and the call sent again
answers with that version instead of finding the version moved (a conflict, after which the
caller would apply its change a second time). The key outlives any re-send by far, and is kept
even when other writers wrote on top of the version meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, ResponseError, TryAgainError

from tiers import cluster
from tiers.async_calls import BROKEN, AsyncScript, call_once, is_async_client, repeatable
from tiers.conversations import StoredConversation
from tiers.errors import MemoryConfigException, MemoryRetrievalException, TierUnavailableError
from tiers.scripts import lua_source

CAS = AsyncScript(lua_source("conversation_cas"))
REQUEST_KEPT_MS = 60_000
TIER = "redis"


REPLY_TIMEOUT = 10.0  # seconds a reply may take before it counts as lost (the URL's socket_timeout wins)
REDIRECTS = 3  # a cluster call answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN (it did not run) is sent again this often
_NOT_RUN = (MovedError, AskError, TryAgainError, ClusterDownError)


def open_client(redis_url: str) -> Any:
    """A redis.asyncio client for ``redis_url`` (it connects on first use): a cluster client for
    ``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` for TLS); MemoryConfigException
    for a URL it cannot use. A reply that never comes counts as lost after REPLY_TIMEOUT, so a
    write is sent again instead of waiting for ever."""
    if cluster.is_cluster_url(redis_url):
        return _open_cluster(redis_url)
    try:
        if "socket_timeout=" in redis_url:
            return aioredis.from_url(redis_url)
        return aioredis.from_url(redis_url, socket_timeout=REPLY_TIMEOUT)
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
        raise MemoryConfigException(f"cannot use redis_url {redis_url!r}: {exc}") from None


def _open_cluster(redis_url: str) -> AsyncRedisCluster:
    parts = urlsplit(redis_url)
    options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    if parts.path.strip("/") not in ("", "0"):
        raise MemoryConfigException("a Redis Cluster has database 0 only; remove the database from the URL")
    try:
        timeout = float(options.get("socket_timeout", REPLY_TIMEOUT))
    except ValueError:
        raise MemoryConfigException(f"cannot use redis_url {redis_url!r}: socket_timeout must be a number") from None
    nodes = cluster.parse_nodes(parts.netloc.rpartition("@")[2])
    return AsyncRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        ssl=parts.scheme.lower().startswith("rediss") or options.get("ssl") == "true",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        socket_timeout=timeout,
    )


def _is_cluster_client(client: Any) -> bool:
    return isinstance(client, AsyncRedisCluster)


def _may_be_a_cluster_node(client: Any) -> bool:
    """A redis-py async client of one server (not fakeredis, not a cluster client), whose server
    may turn out to be a node of a Redis Cluster."""
    return isinstance(client, aioredis.Redis) and not type(client).__module__.startswith("fakeredis")


class RedisConversations:
    """The conversations under ``prefix`` on an async Redis ``client`` (redis.asyncio.Redis,
    redis.asyncio.cluster.RedisCluster or fakeredis's FakeAsyncRedis; ValueError for anything
    else). ``ttl_ms`` (None: never) is how long a conversation outlives its last write.
    ``owned``: close the client with the store.

    A client of one redis-py server is asked at first use whether its server is a cluster node;
    if so the store uses a cluster client of that node's cluster (database 0 only) from then on,
    and closes it with the store."""

    def __init__(self, client: Any, prefix: str, ttl_ms: int | None, *, owned: bool = False):
        if not (is_async_client(client) or _is_cluster_client(client)):
            raise ValueError(
                f"client must be an async Redis client (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster "
                f"or fakeredis.FakeAsyncRedis), got {type(client).__name__}"
            )
        self.client, self.prefix, self.ttl_ms, self.owned = client, prefix, ttl_ms, owned
        self._given: Any = None  # the caller's single-server client, once replaced by its cluster's
        self._ask_cluster = _may_be_a_cluster_node(client)
        self._asking: asyncio.Lock | None = None

    async def _redis(self) -> Any:
        """The client to use: at first use, a single server's client is replaced by a cluster
        client when the server is a cluster node."""
        if self._ask_cluster:
            self._asking = self._asking or asyncio.Lock()
            async with self._asking:
                if self._ask_cluster:
                    await self._use_cluster_if_node()
        return self.client

    async def _use_cluster_if_node(self) -> None:
        try:
            found = await self.client.info("cluster")
        except BROKEN:
            return  # nothing answers: the call itself reports it, and the next one asks again
        except ResponseError:  # a server that refuses INFO is no cluster node
            found = {}
        except RedisError as exc:
            raise TierUnavailableError(TIER, str(exc)) from exc
        self._ask_cluster = False
        if not found.get("cluster_enabled"):
            return
        kwargs = self.client.connection_pool.connection_kwargs
        if kwargs.get("db", 0):
            raise MemoryConfigException("the Redis server is a Redis Cluster node, and a cluster has database 0 only")
        nodes = AsyncRedisCluster(
            host=kwargs["host"], port=int(kwargs.get("port", 6379)), username=kwargs.get("username"),
            password=kwargs.get("password"), socket_timeout=kwargs.get("socket_timeout"),
            ssl=self.client.connection_pool.connection_class is aioredis.SSLConnection,
        )
        if self.owned:
            await self.client.aclose()
        else:
            self._given = self.client
        self.client = nodes

    def key(self, conversation_id: str) -> str:
        return f"{self.prefix}:conversation:{{{conversation_id}}}"

    async def read(self, conversation_id: str) -> StoredConversation | None:
        client = await self._redis()
        fields = await repeatable(TIER, lambda: client.hgetall(self.key(conversation_id)))
        if not fields:
            return None
        text = {_text(name): _text(value) for name, value in fields.items()}
        try:
            return StoredConversation(
                working_memory=text["working_memory"],
                turn_count=int(text["turn_count"]),
                turns=text["turns"],
                updated_at=float(text["updated_at"]),
                version=int(text["version"]),
            )
        except (KeyError, ValueError) as exc:  # a hash some other writer left
            raise MemoryRetrievalException(f"conversation {conversation_id!r} in Redis is unreadable: {exc!r}") from exc

    async def write_if(self, conversation_id: str, expected: int, value: StoredConversation) -> int | None:
        key = self.key(conversation_id)
        request = f"{key}:request:{secrets.token_hex(8)}"
        args = [expected, value.working_memory, value.turn_count, value.turns, repr(value.updated_at),
                self.ttl_ms or 0, REQUEST_KEPT_MS]
        client = await self._redis()
        if _is_cluster_client(client):
            version = int(await _call_once_on_cluster(client, CAS, [key, request], args))
        else:
            version = int(await call_once(TIER, client, CAS, [key, request], args))
        return version or None

    async def delete(self, conversation_id: str) -> bool:
        client = await self._redis()
        return bool(await repeatable(TIER, lambda: client.delete(self.key(conversation_id))))

    async def remaining_ms(self, conversation_id: str) -> int | None:
        """Milliseconds until Redis forgets the conversation; None if it never will or does not exist."""
        client = await self._redis()
        remaining = await repeatable(TIER, lambda: client.pttl(self.key(conversation_id)))
        return remaining if remaining >= 0 else None

    async def close(self) -> None:
        if self.owned or self._given is not None:  # a cluster client this store made is its own to close
            await self.client.aclose()


class _OnNode:
    """A cluster node seen as the single-server client :func:`call_once` sends on: a connection of
    the node's own, connected before it is handed out (so a node that cannot be reached means the
    call was not sent)."""

    def __init__(self, node: ClusterNode):
        self.connection_pool = self
        self._node = node

    async def get_connection(self) -> Any:
        connection = self._node.acquire_connection()
        try:
            if not connection.is_connected:
                await connection.connect()
        except BaseException:
            self._node.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        self._node.release(connection)

    async def execute_command(self, *args: Any) -> Any:  # what is_async_client looks for; unused
        raise NotImplementedError


async def _call_once_on_cluster(client: AsyncRedisCluster, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
    """:func:`call_once` on the primary serving ``keys[0]``'s slot; a call the cluster answered
    MOVED, ASK, TRYAGAIN or CLUSTERDOWN did not run, and is sent again once the slot map is read
    again (up to REDIRECTS times)."""
    for attempt in range(REDIRECTS + 1):
        try:
            await client.initialize()
            node = client.get_node_from_key(keys[0])
            if node is None:
                raise ClusterDownError(f"no primary serves the slot of {keys[0]!r}")
        except (RedisError, OSError) as exc:
            raise TierUnavailableError(TIER, f"cannot connect to the Redis Cluster: {exc}") from exc
        try:
            return await call_once(TIER, _OnNode(node), script, keys, args)
        except TierUnavailableError as exc:
            if not isinstance(exc.__cause__, _NOT_RUN) or attempt == REDIRECTS:
                raise
            await asyncio.sleep(0.05 * attempt)
            try:
                await client.nodes_manager.initialize()
            except (RedisError, OSError):
                pass  # the next attempt asks again
    raise AssertionError("unreachable")  # pragma: no cover


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
