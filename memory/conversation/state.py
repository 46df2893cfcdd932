"""What a conversation remembers: one immutable value, the same in every backend.

A ``ConversationMemory`` holds the working memory (the text an agent carries from turn to
turn), the count of turns so far, the newest turns themselves and the backend's version, which
is what makes an update atomic: a backend writes a new value only if the version it was
computed from is still current (see :mod:`memory.conversation.manager`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from memory import validation
from memory.conversation.errors import InvalidConversationError

CONVERSATION_ID_LIMIT = 120  # leaves room for the tiered manager's agent-id prefix
MAX_WORKING_MEMORY_CHARS = 1_000_000  # what any backend accepts; agents keep theirs far smaller


def validate_conversation_id(value: Any) -> str:
    """Return the id or raise InvalidConversationError naming what is wrong with it: the rule of
    every id that becomes part of keys (tiers.keys.validate_name), at most 120 characters."""
    return validation.name(value, "conversation_id", CONVERSATION_ID_LIMIT, InvalidConversationError)


def validate_working_memory(value: Any) -> str:
    return validate_text(value, "working_memory")


def validate_text(value: Any, name: str) -> str:
    """A working memory or message every backend stores as it is (see validation.text)."""
    return validation.text(value, name, MAX_WORKING_MEMORY_CHARS, error=InvalidConversationError)


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, numbered from 1 in the order the turns were applied."""

    number: int
    message: str
    timestamp: float

    def to_list(self) -> list[Any]:
        return [self.number, self.message, self.timestamp]


@dataclass(frozen=True)
class ConversationMemory:
    """A conversation's memory as read from a backend.

    ``working_memory`` is the attribute every manager's ``retrieve`` promises. ``turns`` holds the newest
    turns (as many as the agent keeps), oldest first; ``turn_count`` counts every turn ever
    applied. ``version`` is the backend's write counter (0: never written).
    """

    conversation_id: str
    working_memory: str = ""
    turn_count: int = 0
    turns: tuple[Turn, ...] = ()
    updated_at: float = 0.0
    version: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)  # backend details, e.g. where it came from

    @classmethod
    def empty(cls, conversation_id: str) -> ConversationMemory:
        return cls(validate_conversation_id(conversation_id))

    def with_turn(self, message: str, working_memory: str, now: float, keep_turns: int) -> ConversationMemory:
        """The next memory: one more turn, the newest ``keep_turns`` turns, a new working memory."""
        turn = Turn(self.turn_count + 1, message, now)
        kept = (self.turns + (turn,))[-keep_turns:] if keep_turns > 0 else ()
        return replace(self, working_memory=working_memory, turn_count=turn.number, turns=kept, updated_at=now)

    def with_working_memory(self, working_memory: str, now: float) -> ConversationMemory:
        return replace(self, working_memory=working_memory, updated_at=now)

    def check_successor(self, new: ConversationMemory) -> None:
        """Refuse an update that is not a well-formed next state of this one."""
        if not isinstance(new, ConversationMemory):
            raise InvalidConversationError(f"an update must return a ConversationMemory, got {type(new).__name__}")
        if not isinstance(new.conversation_id, str) or new.conversation_id != self.conversation_id:
            raise InvalidConversationError(
                f"an update of {self.conversation_id!r} returned the memory of {validation.shown(new.conversation_id)}"
            )
        validate_working_memory(new.working_memory)
        turn_count = validation.count(new.turn_count, "turn_count", error=InvalidConversationError)
        if turn_count < self.turn_count:
            raise InvalidConversationError(f"turn_count went back from {self.turn_count} to {turn_count}")
        validation.number(new.updated_at, "updated_at", error=InvalidConversationError)
        if not isinstance(new.turns, tuple) or any(not isinstance(t, Turn) for t in new.turns):
            raise InvalidConversationError("turns must be a tuple of Turn values")
        for turn in new.turns:
            validation.count(turn.number, "a turn's number", error=InvalidConversationError)
            validate_text(turn.message, "a turn's message")
            validation.number(turn.timestamp, "a turn's timestamp", error=InvalidConversationError)

    # -- the JSON form every backend stores (no pickle) ------------------------------------------
    def turns_json(self) -> str:
        return json.dumps([t.to_list() for t in self.turns], ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def turns_from_json(text: str | bytes) -> tuple[Turn, ...]:
        return tuple(Turn(int(n), str(m), float(ts)) for n, m, ts in json.loads(text))
