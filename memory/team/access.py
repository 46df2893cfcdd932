"""Access tiers: who may read, write, validate and administer the team's shared memory.

| operation                                                              | tier needed |
|------------------------------------------------------------------------|-------------|
| retrieve working memory (its own or another agent's)                   | OBSERVER    |
| receive its own signals                                                | OBSERVER    |
| list staged patterns, query the pattern library, read conflicts        | OBSERVER    |
| open an existing team session and read it (get, get_info)              | OBSERVER    |
| pending tasks, results, aggregates, active agents and capabilities     | OBSERVER    |
| restore its own collaboration state                                    | OBSERVER    |
| stash, send signals, stage its own patterns, record conflicts          | CONTRIBUTOR |
| persist collaboration state                                            | CONTRIBUTOR |
| add tasks; claim, complete, heartbeat as itself; requeue lapsed leases | CONTRIBUTOR |
| create a team session, join, share and signal in it, broadcast         | CONTRIBUTOR |
| promote or reject a staged pattern, resolve a conflict                 | VALIDATOR   |
| stage a pattern in another agent's name                                | VALIDATOR   |
| register agents, complete a task on its claimer's behalf               | STEWARD     |
| claim, complete or heartbeat in another agent's name                   | STEWARD     |

An OBSERVER (a monitoring dashboard) reads what a dashboard needs and writes nothing: opening a
team session that does not exist raises AccessDeniedError (creating one takes CONTRIBUTOR), its
reads of a session renew no TTL (a member's do: reading is activity), and its listing of pending
tasks leaves lapsed leases for a contributor to requeue (and its listing of staged patterns, the
index entries of expired ones to forget). Receiving its own signals moves only its own read cursor.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from memory import validation
from memory.team.errors import AccessDeniedError
from tiers.errors import InvalidInputError


class AccessTier(enum.IntEnum):
    """Ordered: each tier can do everything the tiers below it can."""

    OBSERVER = 1
    CONTRIBUTOR = 2
    VALIDATOR = 3
    STEWARD = 4

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return self.name if not spec else format(int(self), spec)


@dataclass(frozen=True)
class AgentCredentials:
    """Who is asking and at which tier."""

    agent_id: str
    tier: AccessTier = AccessTier.CONTRIBUTOR

    def __post_init__(self) -> None:
        validation.agent_id(self.agent_id)
        if not isinstance(self.tier, AccessTier):
            if type(self.tier) is not int or not min(AccessTier) <= self.tier <= max(AccessTier):
                raise InvalidInputError(f"tier must be an AccessTier (1-4), got {validation.shown(self.tier)}")
            object.__setattr__(self, "tier", AccessTier(self.tier))

    def can_read(self) -> bool:
        return self.tier >= AccessTier.OBSERVER

    def can_stage(self) -> bool:
        """Write: stash, signal, stage patterns (CONTRIBUTOR and up)."""
        return self.tier >= AccessTier.CONTRIBUTOR

    def can_validate(self) -> bool:
        return self.tier >= AccessTier.VALIDATOR

    def can_administer(self) -> bool:
        return self.tier >= AccessTier.STEWARD

    def require(self, tier: AccessTier, operation: str) -> None:
        """Raise AccessDeniedError unless these credentials reach ``tier``."""
        if self.tier < tier:
            raise AccessDeniedError(self.agent_id, self.tier, tier, operation)


def checked(credentials: object) -> AgentCredentials:
    """``credentials`` if they are AgentCredentials, else InvalidInputError (never a string posing as one)."""
    if not isinstance(credentials, AgentCredentials):
        raise InvalidInputError(f"credentials must be AgentCredentials, got {type(credentials).__name__}")
    return credentials
