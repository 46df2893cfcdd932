"""RedisMemoryManager: one Redis hash per conversation, written by compare-and-set.

The hash, its key and the compare-and-set script are tiers/conversation_redis.py's (on one server
or a Redis Cluster): writers in any number of processes never overwrite each other's turns, and a write whose reply was lost is
sent once more and applied once. The TTL (24 h by default) restarts at every write, so a
conversation is forgotten a day after its last turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.state import validate_conversation_id
from memory.conversation.stored import StoredMemoryManager
from tiers.conversation_redis import RedisConversations, open_client
from tiers.errors import MemoryRetrievalException, TierUnavailableError
from tiers.keys import validate_prefix

DEFAULT_TTL = 24 * 3600.0


class RedisMemoryManager(StoredMemoryManager):
    """Conversations in Redis (``redis.asyncio``), shared by every process using the same server.

    Give ``redis_url`` (the manager opens and closes its client; ``redis+cluster://host:port,...``
    or a node's plain URL for a Redis Cluster) or ``client`` (an async Redis client you own:
    ``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``, or
    ``fakeredis.FakeAsyncRedis()`` in tests). ``ttl`` is in seconds; None keeps conversations
    until deleted.
    """

    _store: RedisConversations
    _where = "Redis"

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
            client = open_client(validation.text(redis_url, "redis_url", 4096, error=InvalidConversationError))
        ttl_ms = None if self.ttl is None else max(1, int(self.ttl * 1000))
        try:
            self._store = RedisConversations(client, self.key_prefix, ttl_ms, owned=redis_url is not None)
        except ValueError as exc:
            raise InvalidConversationError(str(exc)) from None

    def key(self, conversation_id: str) -> str:
        return self._store.key(validate_conversation_id(conversation_id))

    async def ttl_remaining(self, conversation_id: str) -> float | None:
        """Seconds until Redis forgets the conversation; None if it never will or does not exist."""
        self._check_open()
        try:
            remaining = await self._store.remaining_ms(validate_conversation_id(conversation_id))
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"Redis did not answer: {exc}") from exc
        return None if remaining is None else remaining / 1000
