"""TieredMemoryManager: conversations kept by tiermem's tiered engine, for as long as it keeps memories.

Every write is archived in an ``AgentMemoryAPI`` as interaction memories of the agent
``<agent_prefix><conversation_id>``, one per turn at ``step_number = turn number``, with contents

    {"conversation_id": ..., "turn": n, "message": <the turn's message, None for a write
     that only set the working memory>, "at": <unix time>, "working_memory": <after this write>}

so a conversation ages from STM to IM to LTM like any memory, its turns stay queryable by turn
range (``history``), and a conversation nobody touched for months is rebuilt from its newest
memories when it returns.

The current memory (the compare-and-set token) lives in a *head* manager. By default that is an
``InMemoryManager`` shared by every TieredMemoryManager of this process on the same engine and
agent prefix, which makes updates atomic within the process; pass ``head=RedisMemoryManager(...)``
when several processes write the same conversations (an engine on a Redis server logs a warning
without one). A write
sets the head first and archives second, so a turn reaches the archive only once it has won; if
the archive refuses it, the head is put back and the update fails as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from memory import validation
from memory._engine.agent_memory import AgentMemoryAPI
from memory.conversation.errors import InvalidConversationError
from memory.conversation.in_memory import InMemoryManager
from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory, Turn, validate_conversation_id
from tiers.errors import MemoryAPIException, MemoryRetrievalException, MemoryStoreException
from tiers.keys import NAME_ALPHABET

log = logging.getLogger(__name__)
T = TypeVar("T")

# the default heads: one per engine and agent prefix in this process, gone with the engine
_process_heads: weakref.WeakKeyDictionary[AgentMemoryAPI, dict[str, InMemoryManager]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ArchivedTurn(Turn):
    """A turn as the engine holds it; ``tier`` says which tier answered (stm, im or ltm)."""

    tier: str = ""


class TieredMemoryManager(MemoryManager):
    """Conversation memory backed by an ``AgentMemoryAPI`` (closed with the manager if ``close_api``).

    ``priority`` is the importance given to archived turns (0-1); ``rebuild_turns`` is how many
    of the newest archived memories a returning conversation is rebuilt from.
    """

    def __init__(
        self,
        api: AgentMemoryAPI,
        *,
        head: MemoryManager | None = None,
        agent_prefix: str = "conv:",
        priority: float = 0.5,
        rebuild_turns: int = 20,
        close_api: bool = False,
        conflict_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(conflict_timeout=conflict_timeout, clock=clock)
        if not isinstance(api, AgentMemoryAPI):
            raise InvalidConversationError(f"api must be an AgentMemoryAPI, got {type(api).__name__}")
        if head is not None and (not isinstance(head, MemoryManager) or isinstance(head, TieredMemoryManager)):
            raise InvalidConversationError("head must be an InMemoryManager, RedisMemoryManager or DatabaseMemoryManager")
        if not isinstance(agent_prefix, str) or len(agent_prefix) > 8:
            raise InvalidConversationError(f"agent_prefix must be a str of at most 8 characters, got {agent_prefix!r}")
        if agent_prefix and not NAME_ALPHABET.fullmatch(agent_prefix):  # the ids' alphabet
            raise InvalidConversationError(f"agent_prefix {agent_prefix!r} contains characters outside [A-Za-z0-9_.:@/+=-]")
        priority = validation.importance(priority, "priority", error=InvalidConversationError)
        rebuild_turns = validation.count(rebuild_turns, "rebuild_turns", minimum=1, error=InvalidConversationError)
        self.api = api
        if head is None:
            if api.mode == "redis":
                log.warning(
                    "TieredMemoryManager without a shared head: updates are atomic within this process only; "
                    "pass head=RedisMemoryManager(...) when several processes write the same conversations"
                )
            heads = _process_heads.setdefault(api, {})
            head = heads.setdefault(agent_prefix, InMemoryManager(max_conversations=10_000, clock=clock))
        self.head = head
        self.agent_prefix = agent_prefix
        self.priority = priority
        self.rebuild_turns = rebuild_turns
        self._close_api = close_api
        self._closed = False
        # the engine is synchronous: its calls run one at a time on a thread of their own
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiermem-conversation-archive")

    def agent_id(self, conversation_id: str) -> str:
        """The engine agent whose memories are this conversation's turns."""
        return self.agent_prefix + validate_conversation_id(conversation_id)

    async def _engine(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise MemoryAPIException("this TieredMemoryManager is closed")
        return await asyncio.get_running_loop().run_in_executor(self._engine_thread, lambda: call(*args, **kwargs))

    # -- the backend contract ----------------------------------------------------------------------
    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        found = await self.head._read(conversation_id)
        if found is not None:
            return replace(found, extra={"source": "head"})
        return await self._rebuild(conversation_id)

    async def _rebuild(self, conversation_id: str) -> ConversationMemory | None:
        """The conversation as its newest archived memories tell it (version 0: not in the head)."""
        newest = await self._engine(
            self.api.retrieve_recent, self.agent_id(conversation_id), count=self.rebuild_turns, memory_type="interaction"
        )
        if not newest:
            return None
        try:
            latest = newest[0]["contents"]
            turns = {
                m["contents"]["turn"]: Turn(m["contents"]["turn"], m["contents"]["message"], m["contents"]["at"])
                for m in newest
                if m["contents"]["message"] is not None
            }
            return ConversationMemory(
                conversation_id=conversation_id,
                working_memory=latest["working_memory"],
                turn_count=latest["turn"],
                turns=tuple(turns[n] for n in sorted(turns)),
                updated_at=latest["at"],
                version=0,
                extra={"source": "archive", "tier": newest[0]["tier"]},
            )
        except (KeyError, TypeError) as exc:  # a memory of that agent that is not an archived turn
            raise MemoryRetrievalException(f"the archive of conversation {conversation_id!r} is unreadable: {exc!r}") from exc

    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        if previous.extra.get("source") != "head":
            previous = replace(previous, version=0)  # rebuilt or new: the head must not hold it yet
        version = await self.head._write_if(memory, previous)
        if version is None:
            return None
        try:
            await self._engine(self.api.store_many, self._archive_records(memory, previous))
        except MemoryAPIException as exc:
            await self._put_back(memory, previous, version)
            raise MemoryStoreException(
                f"the engine did not archive conversation {memory.conversation_id!r}, so the update was undone: {exc}"
            ) from exc
        return version

    def _archive_records(self, memory: ConversationMemory, previous: ConversationMemory) -> list[dict[str, Any]]:
        agent_id = self.agent_id(memory.conversation_id)
        new_turns = [t for t in memory.turns if t.number > previous.turn_count]
        if not new_turns or new_turns[-1].number != memory.turn_count:  # a working-memory write, or turns not kept
            new_turns.append(Turn(memory.turn_count, None, memory.updated_at))  # type: ignore[arg-type]
        return [
            {
                "agent_id": agent_id,
                "step_number": turn.number,
                "memory_type": "interaction",
                "priority": self.priority,
                "data": {
                    "conversation_id": memory.conversation_id,
                    "turn": turn.number,
                    "message": turn.message,
                    "at": turn.timestamp,
                    "working_memory": memory.working_memory,
                },
            }
            for turn in new_turns
        ]

    async def _put_back(self, memory: ConversationMemory, previous: ConversationMemory, version: int) -> None:
        written = replace(memory, version=version)
        try:
            if previous.version == 0:
                undone = await self.head._delete(memory.conversation_id)
            else:
                undone = await self.head._write_if(previous, written) is not None
        except MemoryAPIException as exc:
            undone = False
            log.error("conversation %s: could not undo the head after a failed archive: %s", memory.conversation_id, exc)
        if not undone:
            log.error("conversation %s: turn %d is in the head but not in the archive", memory.conversation_id, memory.turn_count)

    async def _delete(self, conversation_id: str) -> bool:
        in_head = await self.head._delete(conversation_id)
        archived = await self._engine(self.api.clear_agent_memory, self.agent_id(conversation_id))
        return in_head or archived > 0

    # -- beyond the contract -------------------------------------------------------------------------
    async def history(self, conversation_id: str, first_turn: int = 1, last_turn: int | None = None) -> list[ArchivedTurn]:
        """The conversation's turns numbered ``first_turn`` to ``last_turn``, oldest first, from every tier."""
        first_turn = validation.step(first_turn, "first_turn")
        last_turn = validation.MAX_STEP - 1 if last_turn is None else validation.step(last_turn, "last_turn")
        found = await self._engine(
            self.api.retrieve_by_time_range,
            self.agent_id(conversation_id),
            first_turn,
            last_turn,
            memory_type="interaction",
        )
        return [
            ArchivedTurn(m["contents"]["turn"], m["contents"]["message"], m["contents"]["at"], m["tier"])
            for m in found
            if m["contents"]["message"] is not None
        ]

    async def close(self) -> None:
        """Close the head and the archive thread, and the ``AgentMemoryAPI`` if ``close_api``."""
        if self._closed:
            return
        await self.head.close()
        if self._close_api:
            await self._engine(self.api.close)
        self._closed = True
        self._engine_thread.shutdown(wait=True)
