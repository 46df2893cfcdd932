"""InMemoryManager: conversations in a dict of this process, for tests, development and as a cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory


class InMemoryManager(MemoryManager):
    """Conversations kept in this process only; gone when it exits.

    ``ttl`` (seconds, None: never) forgets a conversation that long after its last write, like
    the Redis manager's key expiry; ``max_conversations`` (None: no bound) forgets the least
    recently used ones beyond it. Both read the injected ``clock``.
    """

    def __init__(
        self,
        *,
        ttl: float | None = None,
        max_conversations: int | None = None,
        conflict_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(conflict_timeout=conflict_timeout, clock=clock)
        self.ttl = None if ttl is None else validation.seconds(ttl, "ttl", error=InvalidConversationError)
        self.max_conversations = (
            None if max_conversations is None
            else validation.count(max_conversations, "max_conversations", minimum=1, error=InvalidConversationError)
        )
        self._memories: OrderedDict[str, tuple[ConversationMemory, float]] = OrderedDict()  # id -> (memory, written at)

    def __len__(self) -> int:
        return len(self._memories)

    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        entry = self._memories.get(conversation_id)
        if entry is None:
            return None
        memory, written = entry
        if self.ttl is not None and self._clock() >= written + self.ttl:
            del self._memories[conversation_id]
            return None
        self._memories.move_to_end(conversation_id)
        return memory

    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        expected_version = previous.version
        current = await self._read(memory.conversation_id)  # no await point between check and set
        if (current.version if current is not None else 0) != expected_version:
            return None
        version = expected_version + 1
        self._memories[memory.conversation_id] = (replace(memory, version=version), self._clock())
        self._memories.move_to_end(memory.conversation_id)
        if self.max_conversations is not None:
            while len(self._memories) > self.max_conversations:
                self._memories.popitem(last=False)
        return version

    async def _delete(self, conversation_id: str) -> bool:
        return self._memories.pop(conversation_id, None) is not None
