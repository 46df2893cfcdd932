"""Collaboration state: what an agent learned about working with its user, kept across processes.

Each persisted state is one Redis string per (agent, session) plus a per-agent index of session
ids by the time they were persisted (tiers/coordination/collaboration.py), so ``restore`` without
a session id finds the agent's most recent state from any process. The newest ``KEEP`` states
per agent are kept; no TTL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import translated
from tiers.errors import InvalidInputError

KEEP = 100  # persisted states kept per agent


@dataclass
class CollaborationState:
    """Trust and history between an agent and the people or agents it works with."""

    trust_level: float = 0.5  # 0..1
    successful_interventions: int = 0
    failed_interventions: int = 0
    total_interactions: int = 0
    shared_context: dict[str, Any] = field(default_factory=dict)
    last_updated: float = field(default_factory=time.time)

    def record_success(self) -> None:
        self.successful_interventions += 1
        self.total_interactions += 1
        self.trust_level = min(1.0, self.trust_level + 0.05)

    def record_failure(self) -> None:
        self.failed_interventions += 1
        self.total_interactions += 1
        self.trust_level = max(0.0, self.trust_level - 0.1)

    def to_dict(self) -> dict[str, Any]:
        """The state as it is persisted, after checking every field."""
        validation.number(self.trust_level, "trust_level", low=0.0, high=1.0)
        for name in ("successful_interventions", "failed_interventions", "total_interactions"):
            validation.count(getattr(self, name), name, 0, 2**63 - 1)
        if not isinstance(self.shared_context, Mapping):
            raise InvalidInputError(f"shared_context must be a dict, got {type(self.shared_context).__name__}")
        validation.number(self.last_updated, "last_updated")
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollaborationState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@translated("write")
def persist(memory: Any, credentials: AgentCredentials, session_id: str, state: Mapping[str, Any]) -> bool:
    credentials.require(AccessTier.CONTRIBUTOR, "persist_collaboration_state")
    validation.name(session_id, "session_id")
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"state must be a dict, got {type(state).__name__}")
    blob = values.pack(dict(state), "collaboration state")
    memory.stores.collaboration.put(credentials.agent_id, session_id, blob, memory.now_ms(), KEEP)
    return True


@translated("read")
def restore(memory: Any, credentials: AgentCredentials, session_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """(session id, state) of that session, or of the agent's most recent one; None if there is none."""
    credentials.require(AccessTier.OBSERVER, "restore_collaboration_state")
    store, me = memory.stores.collaboration, credentials.agent_id
    if session_id is None:
        session_id = store.newest(me)
        if session_id is None:
            return None
    else:
        validation.name(session_id, "session_id")
    blob = store.get(me, session_id)
    return None if blob is None else (session_id, values.unpack(blob))
