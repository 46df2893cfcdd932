"""The contract of a conversation store: what the conversation layer's managers keep in Redis or SQL.

A store holds one value per conversation, written by compare-and-set on its version, so the
managers (memory/conversation) can run an optimistic read-modify-write over any of them:

    read(conversation_id)                        the stored value, or None
    write_if(conversation_id, expected, value)   the new version, or None when the stored version
                                                 is no longer ``expected`` (0: nothing stored)
    delete(conversation_id)                      True if there was one
    close()

Stores raise tiermem's errors only: TierUnavailableError when the store did not answer (the
write did not happen), OutcomeUnknownError when a write's answer was lost and it may have
happened, MemoryRetrievalException for a value some other writer left unreadable. The stores:
tiers/conversation_redis.py and tiers/conversation_sql.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StoredConversation:
    """A conversation as a store holds it. ``turns`` is the JSON text the conversation layer
    writes (memory/conversation/state.py owns its form); ``version`` counts the writes so far."""

    working_memory: str
    turn_count: int
    turns: str
    updated_at: float
    version: int = 0


class ConversationStore(Protocol):
    async def read(self, conversation_id: str) -> StoredConversation | None: ...

    async def write_if(self, conversation_id: str, expected: int, value: StoredConversation) -> int | None: ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def close(self) -> None: ...
