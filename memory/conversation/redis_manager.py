"""RedisMemoryManager: one Redis hash per conversation, written by compare-and-set in Lua.

Key schema (this module is the only one that builds these names):

    <prefix>:conversation:{<conversation_id>}   hash   version      writes so far (the CAS token)
                                                       working_memory
                                                       turn_count   turns applied so far
                                                       turns        JSON [[number, message, unix time], ...]
                                                       updated_at   unix time of the last write

The hash tag keeps the key Cluster-legal; the TTL (24 h by default) restarts at every write, so
a conversation is forgotten a day after its last turn. A write is one EVALSHA of
``CAS_SCRIPT``, which compares the version and writes in one atomic step on the server, so
writers in any number of processes never overwrite each other's turns.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory, validate_conversation_id
from memory.errors import MemoryConfigException, MemoryRetrievalException, MemoryStoreException
from tiers.keys import validate_prefix

DEFAULT_TTL = 24 * 3600.0

CAS_SCRIPT = """
-- Write a conversation's memory if its version is still the one the caller read.
-- KEYS[1]  <prefix>:conversation:{<conversation_id>}  (hash)
-- ARGV[1]  expected version ("0": the key must not exist)
-- ARGV[2]  working_memory  ARGV[3] turn_count  ARGV[4] turns (JSON)  ARGV[5] updated_at
-- ARGV[6]  TTL in milliseconds ("0": never expires)
-- Returns the new version, or 0 when another writer got there first (nothing written).
local current = redis.call('HGET', KEYS[1], 'version') or '0'
if current ~= ARGV[1] then
  return 0
end
local version = tonumber(current) + 1
redis.call('HSET', KEYS[1], 'version', version, 'working_memory', ARGV[2], 'turn_count', ARGV[3],
           'turns', ARGV[4], 'updated_at', ARGV[5])
if ARGV[6] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('PERSIST', KEYS[1])
end
return version
"""


class RedisMemoryManager(MemoryManager):
    """Conversations in Redis (``redis.asyncio``), shared by every process using the same server.

    Give ``redis_url`` (the manager opens and closes its client) or ``client`` (an async Redis
    client you own, e.g. ``fakeredis.FakeAsyncRedis()`` in tests). ``ttl`` is in seconds; None
    keeps conversations until deleted.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: Any = None,
        key_prefix: str = "tiermem",
        ttl: float | None = DEFAULT_TTL,
        conflict_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(conflict_timeout=conflict_timeout, clock=clock)
        if (redis_url is None) == (client is None):
            raise InvalidConversationError("give RedisMemoryManager either redis_url or client, not both or neither")
        self.ttl = None if ttl is None else validation.seconds(ttl, "ttl", error=InvalidConversationError)
        try:
            self.key_prefix = validate_prefix(key_prefix)
        except ValueError as exc:
            raise InvalidConversationError(str(exc)) from None
        if client is None:
            validation.text(redis_url, "redis_url", 4096, error=InvalidConversationError)
            try:
                client = aioredis.from_url(redis_url)
            except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
                raise MemoryConfigException(f"cannot use redis_url {redis_url!r}: {exc}") from None
        elif not callable(getattr(client, "register_script", None)):
            raise InvalidConversationError(f"client must be an async Redis client, got {validation.shown(client)}")
        self._owned = redis_url is not None
        self._client = client
        self._cas = client.register_script(CAS_SCRIPT)

    def key(self, conversation_id: str) -> str:
        return f"{self.key_prefix}:conversation:{{{validate_conversation_id(conversation_id)}}}"

    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        try:
            fields = await self._client.hgetall(self.key(conversation_id))
        except RedisError as exc:
            raise MemoryRetrievalException(f"Redis did not answer for conversation {conversation_id!r}: {exc}") from exc
        if not fields:
            return None
        try:
            text = {_text(name): _text(value) for name, value in fields.items()}
            return ConversationMemory(
                conversation_id=conversation_id,
                working_memory=text["working_memory"],
                turn_count=int(text["turn_count"]),
                turns=ConversationMemory.turns_from_json(text["turns"]),
                updated_at=float(text["updated_at"]),
                version=int(text["version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:  # a hash some other writer left
            raise MemoryRetrievalException(f"conversation {conversation_id!r} in Redis is unreadable: {exc!r}") from exc

    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        expected_version = previous.version
        ttl_ms = 0 if self.ttl is None else max(1, int(self.ttl * 1000))
        args = [expected_version, memory.working_memory, memory.turn_count, memory.turns_json(), repr(memory.updated_at), ttl_ms]
        try:
            version = int(await self._cas(keys=[self.key(memory.conversation_id)], args=args))
        except RedisError as exc:
            raise MemoryStoreException(f"Redis did not store conversation {memory.conversation_id!r}: {exc}") from exc
        return version or None

    async def _delete(self, conversation_id: str) -> bool:
        try:
            return bool(await self._client.delete(self.key(conversation_id)))
        except RedisError as exc:
            raise MemoryStoreException(f"Redis did not delete conversation {conversation_id!r}: {exc}") from exc

    async def ttl_remaining(self, conversation_id: str) -> float | None:
        """Seconds until Redis forgets the conversation; None if it never will or does not exist."""
        try:
            remaining = await self._client.pttl(self.key(conversation_id))
        except RedisError as exc:
            raise MemoryRetrievalException(f"Redis did not answer: {exc}") from exc
        return remaining / 1000 if remaining >= 0 else None

    async def close(self) -> None:
        if self._owned:
            await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
