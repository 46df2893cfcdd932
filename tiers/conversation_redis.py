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
every write. A write is one call of tiers/lua/conversation_cas.lua, which compares the version
and writes in one atomic step, so writers in any number of processes never overwrite each
other's turns.

A write whose reply is lost is sent once more (tiers/async_calls.py). It carries a request id:
the first call that ran left the version it wrote under the request key, and the call sent again
answers with that version instead of finding the version moved (a conflict, after which the
caller would apply its change a second time). The key outlives any re-send by far, and is kept
even when other writers wrote on top of the version meanwhile.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis.asyncio as aioredis

from tiers.async_calls import AsyncScript, call_once, is_async_client, repeatable
from tiers.conversations import StoredConversation
from tiers.errors import MemoryConfigException, MemoryRetrievalException
from tiers.scripts import lua_source

CAS = AsyncScript(lua_source("conversation_cas"))
REQUEST_KEPT_MS = 60_000
TIER = "redis"


REPLY_TIMEOUT = 10.0  # seconds a reply may take before it counts as lost (the URL's socket_timeout wins)


def open_client(redis_url: str) -> Any:
    """A redis.asyncio client for ``redis_url`` (it connects on first use); MemoryConfigException
    for a URL it cannot use. A reply that never comes counts as lost after REPLY_TIMEOUT, so a
    write is sent again instead of waiting for ever."""
    try:
        if "socket_timeout=" in redis_url:
            return aioredis.from_url(redis_url)
        return aioredis.from_url(redis_url, socket_timeout=REPLY_TIMEOUT)
    except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
        raise MemoryConfigException(f"cannot use redis_url {redis_url!r}: {exc}") from None


class RedisConversations:
    """The conversations under ``prefix`` on an async Redis ``client`` (redis.asyncio.Redis or
    fakeredis's FakeAsyncRedis; ValueError for anything else). ``ttl_ms`` (None: never) is how
    long a conversation outlives its last write. ``owned``: close the client with the store."""

    def __init__(self, client: Any, prefix: str, ttl_ms: int | None, *, owned: bool = False):
        if not is_async_client(client):
            raise ValueError(
                f"client must be an async Redis client (redis.asyncio.Redis or fakeredis.FakeAsyncRedis), "
                f"got {type(client).__name__}"
            )
        self.client, self.prefix, self.ttl_ms, self.owned = client, prefix, ttl_ms, owned

    def key(self, conversation_id: str) -> str:
        return f"{self.prefix}:conversation:{{{conversation_id}}}"

    async def read(self, conversation_id: str) -> StoredConversation | None:
        fields = await repeatable(TIER, lambda: self.client.hgetall(self.key(conversation_id)))
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
        version = int(await call_once(TIER, self.client, CAS, [key, request], args))
        return version or None

    async def delete(self, conversation_id: str) -> bool:
        return bool(await repeatable(TIER, lambda: self.client.delete(self.key(conversation_id))))

    async def remaining_ms(self, conversation_id: str) -> int | None:
        """Milliseconds until Redis forgets the conversation; None if it never will or does not exist."""
        remaining = await repeatable(TIER, lambda: self.client.pttl(self.key(conversation_id)))
        return remaining if remaining >= 0 else None

    async def close(self) -> None:
        if self.owned:
            await self.client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
