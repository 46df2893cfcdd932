"""AgentWorkspace: one agent's view of the team's shared memory (``EmpathyOS`` in the short-term memory reference).

It carries the agent's credentials and session id and forwards to the shared
RedisShortTermMemory: working memory, signals, pattern staging and validation, conflicts, and its
collaboration state. Built without a memory it opens the default one (``get_redis_memory()``:
``REDIS_URL``, else localhost:6379, else the embedded engine in ``.tiermem``) and closes it in
``close()``.
"""

from __future__ import annotations

import uuid
from typing import Any

from memory import validation
from memory.team.access import AccessTier, AgentCredentials
from memory.team.collaboration import CollaborationState
from memory.team.conflicts import ConflictContext
from memory.team.patterns import StagedPattern
from memory.team.store import get_redis_memory, shared
from tiers.errors import InvalidInputError

LEVELS = range(1, 6)  # the empathy levels, reactive (1) to systems (5)


def _level(value: Any, name: str) -> int:
    if type(value) is not int or value not in LEVELS:
        raise InvalidInputError(f"{name} must be an int from 1 to 5, got {validation.shown(value)}")
    return value


class AgentWorkspace:
    def __init__(
        self,
        user_id: str,
        short_term_memory: Any = None,
        access_tier: AccessTier = AccessTier.CONTRIBUTOR,
        target_level: int = 3,
        session_id: str | None = None,
    ):
        self.user_id = validation.name(user_id, "user_id")
        self.credentials = AgentCredentials(user_id, access_tier)
        self.session_id = validation.name(session_id, "session_id") if session_id is not None else uuid.uuid4().hex
        self.target_level = _level(target_level, "target_level")
        self.current_empathy_level = 1
        self.collaboration_state = CollaborationState()
        self._owns_memory = short_term_memory is None
        self.short_term_memory = get_redis_memory() if short_term_memory is None else shared(short_term_memory)

    @property
    def access_tier(self) -> AccessTier:
        return self.credentials.tier

    def has_short_term_memory(self) -> bool:
        return self.short_term_memory is not None

    def get_capabilities(self) -> dict[str, Any]:
        return self.short_term_memory.get_capabilities()

    # -- working memory -----------------------------------------------------------------------
    def stash(self, key: str, value: Any, ttl: Any = None) -> bool:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (default 1 hour) (CONTRIBUTOR)."""
        return self.short_term_memory.stash(key, value, self.credentials, ttl)

    def retrieve(self, key: str, agent_id: str | None = None) -> Any:
        """Own value (OBSERVER) or another agent's (CONTRIBUTOR); None when absent or expired."""
        return self.short_term_memory.retrieve(key, self.credentials, agent_id)

    # -- signals ------------------------------------------------------------------------------
    def send_signal(self, signal_type: str, data: Any = None, target_agent: str | None = None) -> str:
        """To ``target_agent``, or broadcast when None (CONTRIBUTOR). Returns the signal id."""
        return self.short_term_memory.send_signal(self.credentials, signal_type, data, target_agent)

    def receive_signals(self, signal_type: str | None = None, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Signals not yet received, oldest first; waits up to ``timeout`` s when there are none."""
        return self.short_term_memory.receive_signals(self.credentials, signal_type, timeout)

    # -- patterns -----------------------------------------------------------------------------
    def stage_pattern(self, pattern: StagedPattern) -> bool:
        return self.short_term_memory.stage_pattern(pattern, self.credentials)

    def get_staged_patterns(self) -> list[StagedPattern]:
        return self.short_term_memory.get_staged_patterns(self.credentials)

    def promote_pattern(self, pattern_id: str) -> Any:
        """Into the long-term library (VALIDATOR): the LibraryPattern, or None if another validator won."""
        return self.short_term_memory.promote_pattern(pattern_id, self.credentials)

    def reject_pattern(self, pattern_id: str, reason: str) -> bool:
        return self.short_term_memory.reject_pattern(pattern_id, reason, self.credentials)

    def find_patterns(self, pattern_type: str | None = None, name: str | None = None) -> list[Any]:
        """Promoted patterns in the library, by type and/or name (OBSERVER)."""
        self.credentials.require(AccessTier.OBSERVER, "find_patterns")
        return self.short_term_memory.pattern_library.find(pattern_type=pattern_type, name=name)

    # -- conflicts ----------------------------------------------------------------------------
    def record_conflict(self, conflict: ConflictContext) -> bool:
        return self.short_term_memory.record_conflict(conflict, self.credentials)

    def get_conflict(self, conflict_id: str) -> ConflictContext:
        return self.short_term_memory.get_conflict(conflict_id, self.credentials)

    def resolve_conflict(self, conflict_id: str, strategy: str = "highest_confidence") -> ConflictContext:
        return self.short_term_memory.resolve_conflict(conflict_id, strategy, self.credentials)

    # -- collaboration state ------------------------------------------------------------------
    def persist_collaboration_state(self) -> bool:
        """Save the collaboration state and empathy level under this session id (CONTRIBUTOR)."""
        if not isinstance(self.collaboration_state, CollaborationState):
            got = type(self.collaboration_state).__name__
            raise InvalidInputError(f"collaboration_state must be a CollaborationState, got {got}")
        _level(self.current_empathy_level, "current_empathy_level")
        state = {
            **self.collaboration_state.to_dict(),
            "current_empathy_level": self.current_empathy_level,
            "target_level": self.target_level,
        }
        return self.short_term_memory.persist_collaboration_state(self.credentials, self.session_id, state)

    def restore_collaboration_state(self, session_id: str | None = None) -> bool:
        """Load that session's state, or this user's most recent one; False when there is none."""
        found = self.short_term_memory.restore_collaboration_state(self.credentials, session_id)
        if found is None:
            return False
        _, state = found
        self.collaboration_state = CollaborationState.from_dict(state)
        self.current_empathy_level = state.get("current_empathy_level", self.current_empathy_level)
        return True

    def close(self) -> None:
        """Close the memory if this workspace opened it."""
        if self._owns_memory and self.short_term_memory is not None:
            self.short_term_memory.close()
            self.short_term_memory = None  # type: ignore[assignment]  # closed: nothing to reach

    def __enter__(self) -> AgentWorkspace:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AgentWorkspace(user_id={self.user_id!r}, tier={self.credentials.tier.name}, session_id={self.session_id!r})"
