"""WorkingMemoryAgent: reads a conversation's memory, folds the new message in, stores it.

``process`` answers with a status, ``"success"`` or ``"error: <description>"``, and never
raises for a bad input, a failing store or a failing model: the error is in the status (and in
``handle``'s outcome, typed), nothing half-done is stored, and the next call works as usual.

With one of tiermem's managers the read-modify-write is one atomic ``update`` (concurrent turns
of one conversation all land). Any other object with ``retrieve``/``store`` methods works too,
read then written, with no protection against a concurrent turn in between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memory import validation
from memory.conversation.errors import InvalidConversationError, LLMClientError
from memory.conversation.llm import LLMClient, rewrite_working_memory
from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory, validate_conversation_id, validate_text
from memory.conversation.working_memory import WorkingMemoryPolicy, fold_turn, next_turn_number
from tiers.errors import MemoryAPIException, MemoryRetrievalException

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentInput:
    """One turn: the message and its metadata, which must carry the ``conversation_id``."""

    message: str
    metadata: Mapping[str, Any] | None = None


IAgentInput = AgentInput  # the interface name the memory-manager document uses


@dataclass(frozen=True)
class TurnOutcome:
    """What ``handle`` did: ``status`` is what ``process`` returns."""

    status: str
    conversation_id: str | None = None
    working_memory: str | None = None  # the new working memory (also when nothing was stored)
    turn: int | None = None  # the turn's number in its conversation
    stored: bool = False
    usage: Any = None  # the model's usage report, when a model was asked
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class WorkingMemoryAgent:
    """Keeps each conversation's working memory up to date, one message at a time."""

    def __init__(
        self,
        llm_client: LLMClient | None = None,
        memory_manager: Any = None,
        *,
        policy: WorkingMemoryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if llm_client is not None and not callable(getattr(llm_client, "chat", None)):
            raise InvalidConversationError(f"llm_client must have an async chat(messages), got {validation.shown(llm_client)}")
        if memory_manager is not None and not isinstance(memory_manager, MemoryManager) and not (
            callable(getattr(memory_manager, "retrieve", None)) and callable(getattr(memory_manager, "store", None))
        ):
            raise InvalidConversationError(
                f"memory_manager must have async retrieve(query) and store(data), got {validation.shown(memory_manager)}"
            )
        if policy is not None and not isinstance(policy, WorkingMemoryPolicy):
            raise InvalidConversationError(f"policy must be a WorkingMemoryPolicy, got {validation.shown(policy)}")
        if not callable(clock):
            raise InvalidConversationError(f"clock must be a callable returning unix time, got {validation.shown(clock)}")
        self.llm_client = llm_client
        self.memory_manager = memory_manager
        self.policy = policy or WorkingMemoryPolicy()
        self._clock = clock

    async def close(self) -> None:
        """Close the memory manager (for agents built by ``create_memory_agent``, which own theirs)."""
        if isinstance(self.memory_manager, MemoryManager):
            await self.memory_manager.close()

    async def __aenter__(self) -> WorkingMemoryAgent:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def process(self, agent_input: Any) -> str:
        return (await self.handle(agent_input)).status

    async def handle(self, agent_input: Any) -> TurnOutcome:
        try:
            conversation_id, message = self._check(agent_input)
        except InvalidConversationError as exc:
            return _failed(exc, None)
        manager = self.memory_manager
        if manager is None:
            return await self._without_storage(conversation_id, message)
        if isinstance(manager, MemoryManager):
            return await self._atomic(manager, conversation_id, message)
        return await self._read_then_write(manager, conversation_id, message)

    def _check(self, agent_input: Any) -> tuple[str, str]:
        message = getattr(agent_input, "message", None)
        metadata = getattr(agent_input, "metadata", None)
        if not hasattr(agent_input, "message") or not hasattr(agent_input, "metadata"):
            raise InvalidConversationError(f"expected an AgentInput(message, metadata), got {type(agent_input).__name__}")
        if not isinstance(message, str) or not message.strip():
            raise InvalidConversationError("message must be a non-empty str")
        if len(message) > self.policy.max_message_chars:
            raise InvalidConversationError(
                f"message is {len(message)} characters long; the limit is {self.policy.max_message_chars}"
            )
        validate_text(message, "message")
        if metadata is None:
            raise InvalidConversationError("metadata is None; pass metadata={'conversation_id': ...}")
        if not isinstance(metadata, Mapping):
            raise InvalidConversationError(f"metadata must be a dict, got {type(metadata).__name__}")
        if "conversation_id" not in metadata:
            raise InvalidConversationError("metadata has no conversation_id")
        return validate_conversation_id(metadata["conversation_id"]), message

    async def _next_memory(self, working_memory: str, message: str, number: int) -> tuple[str, Any]:
        if self.llm_client is None:
            return fold_turn(working_memory, number, message, self.policy), None
        return await rewrite_working_memory(self.llm_client, working_memory, message, number, self.policy.max_chars)

    async def _without_storage(self, conversation_id: str, message: str) -> TurnOutcome:
        try:
            memory, usage = await self._next_memory("", message, 1)
        except LLMClientError as exc:
            return _failed(exc, conversation_id)
        return TurnOutcome("success", conversation_id, memory, 1, stored=False, usage=usage)

    async def _atomic(self, manager: MemoryManager, conversation_id: str, message: str) -> TurnOutcome:
        usage: list[Any] = [None]
        now = self._clock()

        async def change(current: ConversationMemory) -> ConversationMemory:
            memory, usage[0] = await self._next_memory(current.working_memory, message, current.turn_count + 1)
            return current.with_turn(message, memory, now, self.policy.keep_turns)

        try:
            stored = await manager.update(conversation_id, change)
        except MemoryAPIException as exc:
            return _failed(exc, conversation_id)
        return TurnOutcome("success", conversation_id, stored.working_memory, stored.turn_count, stored=True, usage=usage[0])

    async def _read_then_write(self, manager: Any, conversation_id: str, message: str) -> TurnOutcome:
        """For managers that only have ``retrieve`` and ``store``: read, then write."""
        try:
            found = await manager.retrieve({"conversation_id": conversation_id})
        except Exception as exc:  # noqa: BLE001 - a third-party manager may raise anything
            return _failed(exc, conversation_id, "memory retrieval failed")
        try:
            previous = _working_memory_of(found)
            number = next_turn_number(previous)
            memory, usage = await self._next_memory(previous, message, number)
        except (InvalidConversationError, LLMClientError) as exc:
            return _failed(exc, conversation_id)
        try:
            await manager.store({"conversation_id": conversation_id, "working_memory": memory})
        except Exception as exc:  # noqa: BLE001 - a third-party manager may raise anything
            return _failed(exc, conversation_id, "memory storage failed")
        return TurnOutcome("success", conversation_id, memory, number, stored=True, usage=usage)


def _working_memory_of(found: Any) -> str:
    if not found:
        return ""
    memory = getattr(found[0], "working_memory", None)
    if isinstance(memory, bytes):
        memory = memory.decode()
    if not isinstance(memory, str):
        raise InvalidConversationError(f"retrieve returned {found[0]!r:.100} without a str working_memory")
    return memory


def _failed(exc: Exception, conversation_id: str | None, what: str | None = None) -> TurnOutcome:
    if what is None:
        if isinstance(exc, InvalidConversationError):
            what = "invalid input"
        elif isinstance(exc, LLMClientError):
            what = "llm"
        elif isinstance(exc, MemoryRetrievalException):
            what = "memory retrieval failed"
        else:
            what = "memory storage failed"
    if not isinstance(exc, InvalidConversationError):
        log.warning("conversation %s: %s: %s", conversation_id, what, exc)
    return TurnOutcome(f"error: {what}: {exc}", conversation_id, error=exc)
