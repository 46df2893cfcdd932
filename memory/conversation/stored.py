"""The managers whose conversations live in a store of tiers/ (Redis, SQL): the contract's three
primitives on a :class:`tiers.conversations.ConversationStore`.

The store speaks tiermem's errors; here they become what a manager promises its callers: a read
that got no answer is a ``MemoryRetrievalException``, a write or delete that did not happen a
``MemoryStoreException``, and a write that may have happened stays an ``OutcomeUnknownError``
(read the conversation before writing again), each naming the conversation.
"""

from __future__ import annotations

from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory
from tiers.conversations import ConversationStore, StoredConversation
from tiers.errors import (
    MemoryAPIException,
    MemoryRetrievalException,
    MemoryStoreException,
    OutcomeUnknownError,
    TierUnavailableError,
)


class StoredMemoryManager(MemoryManager):
    """A manager over a store; a subclass sets ``_store`` once its options are checked, and
    ``_where``, how messages name the store ("Redis", "the database")."""

    _store: ConversationStore
    _where: str
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryAPIException(f"this {type(self).__name__} is closed")

    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        self._check_open()
        try:
            stored = await self._store.read(conversation_id)
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"{self._where} did not answer for conversation {conversation_id!r}: {exc}") from exc
        return None if stored is None else self._memory_of(conversation_id, stored)

    def _memory_of(self, conversation_id: str, stored: StoredConversation) -> ConversationMemory:
        try:
            turns = ConversationMemory.turns_from_json(stored.turns)
        except (TypeError, ValueError) as exc:  # JSON some other writer left
            raise MemoryRetrievalException(
                f"conversation {conversation_id!r} in {self._where} is unreadable: {exc!r}") from exc
        return ConversationMemory(conversation_id=conversation_id, working_memory=stored.working_memory,
                                  turn_count=stored.turn_count, turns=turns, updated_at=stored.updated_at,
                                  version=stored.version)

    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        conversation_id = memory.conversation_id
        value = StoredConversation(working_memory=memory.working_memory, turn_count=memory.turn_count,
                                   turns=memory.turns_json(), updated_at=memory.updated_at)
        self._check_open()
        try:
            return await self._store.write_if(conversation_id, previous.version, value)
        except OutcomeUnknownError as exc:
            detail = str(exc).removeprefix(f"{exc.tier}: ")
            raise OutcomeUnknownError(
                exc.tier, f"conversation {conversation_id!r} may or may not hold this update (read it before "
                          f"writing again): {detail}") from exc
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"{self._where} did not store conversation {conversation_id!r}: {exc}") from exc

    async def _delete(self, conversation_id: str) -> bool:
        self._check_open()
        try:
            return await self._store.delete(conversation_id)
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"{self._where} did not delete conversation {conversation_id!r}: {exc}") from exc

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._store.close()
