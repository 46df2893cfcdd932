"""The memory-manager contract: ``store``/``retrieve`` by conversation id plus an atomic ``update``.

A backend implements three primitives (``_read``, ``_write_if``, ``_delete``); everything else is
written once here. ``_write_if`` writes a new value only if the stored version still equals the
one the value was computed from, so ``update`` is an optimistic read-modify-write: read, apply
the caller's change, write if nobody else wrote meanwhile, else read again and re-apply. Updates
of one conversation through one manager also queue on an in-process lock, so coroutines of one
process do not race each other (and an LLM is not asked twice for nothing); the version check is
what protects against other managers and other processes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from memory import validation
from memory.conversation.errors import ConversationConflictError, InvalidConversationError
from memory.conversation.state import ConversationMemory, validate_conversation_id, validate_working_memory

log = logging.getLogger(__name__)

Change = Callable[[ConversationMemory], "Awaitable[ConversationMemory] | ConversationMemory"]
_QUERY_KEYS = frozenset({"conversation_id", "message"})  # the agent may pass the turn's message along
_STORE_KEYS = frozenset({"conversation_id", "working_memory"})


class MemoryManager(ABC):
    """Base of tiermem's managers. Use one per event loop; close it (or ``async with``) when done.

    ``conflict_timeout`` (seconds) bounds how long an update keeps retrying against other writers
    before it raises ``ConversationConflictError``.
    """

    def __init__(self, *, conflict_timeout: float = 30.0, clock: Callable[[], float] = time.time):
        self.conflict_timeout = validation.seconds(conflict_timeout, "conflict_timeout", error=InvalidConversationError)
        if not callable(clock):
            raise InvalidConversationError(f"clock must be a callable returning unix time, got {validation.shown(clock)}")
        self._clock = clock
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.conflicts = 0  # writes that lost the version race and were retried (a contention gauge)

    # -- the backend contract ----------------------------------------------------------------------
    @abstractmethod
    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        """The stored memory with its version, or None."""

    @abstractmethod
    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        """Write ``memory`` if the stored version is still ``previous.version`` (0: nothing stored).

        ``previous`` is the memory ``memory`` was computed from, as ``_read`` returned it.

        Returns the new version, or None when another writer got there first.
        """

    @abstractmethod
    async def _delete(self, conversation_id: str) -> bool:
        """Forget a conversation; True if there was one."""

    async def close(self) -> None:  # noqa: B027 - optional: most managers hold nothing to release
        """Release connections the manager opened itself."""

    # -- store and retrieve ---------------------------------------------------------------------------
    async def retrieve(self, query: Mapping[str, Any]) -> list[ConversationMemory] | None:
        """``[memory]`` for ``query["conversation_id"]``, or None when the conversation is unknown."""
        conversation_id = _conversation_of(query, _QUERY_KEYS, "query")
        found = await self._read(conversation_id)
        return None if found is None else [found]

    async def store(self, data: Mapping[str, Any]) -> ConversationMemory:
        """Set a conversation's working memory (creating the conversation), keeping its turns."""
        conversation_id = _conversation_of(data, _STORE_KEYS, "data")
        working_memory = validate_working_memory(data.get("working_memory", ""))
        now = self._clock()

        async def change(current: ConversationMemory) -> ConversationMemory:
            return current.with_working_memory(working_memory, now)

        return await self.update(conversation_id, change)

    # -- by conversation id ---------------------------------------------------------------------------
    async def get(self, conversation_id: str) -> ConversationMemory | None:
        return await self._read(validate_conversation_id(conversation_id))

    async def delete(self, conversation_id: str) -> bool:
        conversation_id = validate_conversation_id(conversation_id)
        async with self._conversation_lock(conversation_id):
            return await self._delete(conversation_id)

    async def update(self, conversation_id: str, change: Change) -> ConversationMemory:
        """Apply ``change`` atomically: no concurrent update of the conversation is lost.

        ``change`` receives the current memory (``ConversationMemory.empty`` when there is none)
        and returns the next one (a coroutine function, or a plain one); it may run more than once
        when other writers interfere, so it must not have effects beyond computing its answer. If
        it raises, nothing is written.
        """
        conversation_id = validate_conversation_id(conversation_id)
        if not callable(change):
            raise InvalidConversationError(f"change must be a callable, got {validation.shown(change)}")
        deadline = time.monotonic() + self.conflict_timeout
        attempts = 0
        async with self._conversation_lock(conversation_id):
            while True:
                attempts += 1
                current = await self._read(conversation_id) or ConversationMemory.empty(conversation_id)
                new = change(current)
                if inspect.isawaitable(new):
                    new = await new
                current.check_successor(new)
                version = await self._write_if(new, current)
                if version is not None:
                    return replace(new, version=version)
                self.conflicts += 1
                if time.monotonic() >= deadline:
                    raise ConversationConflictError(
                        f"conversation {conversation_id!r} kept changing under this update; "
                        f"gave up after {attempts} attempts in {self.conflict_timeout:g} s",
                        attempts,
                    )
                # full jitter: writers that collided do not collide again in lockstep
                await asyncio.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempts, 10))))

    @asynccontextmanager
    async def _conversation_lock(self, conversation_id: str) -> AsyncIterator[None]:
        """One in-process lock per conversation, dropped when nobody waits on it."""
        lock, users = self._locks.get(conversation_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)

    async def __aenter__(self) -> MemoryManager:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


def _conversation_of(data: Any, allowed: frozenset[str], name: str) -> str:
    if not isinstance(data, Mapping):
        raise InvalidConversationError(f"{name} must be a dict with a conversation_id, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise InvalidConversationError(
            f"{name} has unknown keys {validation.key_names(unknown)}; known keys are {sorted(allowed)}"
        )
    if "conversation_id" not in data:
        raise InvalidConversationError(f"{name} has no conversation_id")
    return validate_conversation_id(data["conversation_id"])

