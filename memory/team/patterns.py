"""Pattern staging: a contributor stages what it discovered, a validator promotes or rejects it.

Staged patterns are kept for 24 hours: in Redis (tiers/coordination/patterns.py), or in the
process with a durable copy on the embedded engine (tiers/coordination/local_patterns.py). A
decision is atomic: the store hands the pattern's decision lease to one caller only while it is
still staged, so of concurrent validators one proceeds and the others get a falsy answer; the
winner writes the library row first (``PatternLibrary.decide``, which the database also
arbitrates) and only then unstages it and marks the id promoted, so a crash in between leaves the
pattern staged, never lost (a later validator finishes the move once the lease lapses). A
promoted id is never staged again. The lease is held by a token of the deciding call: a lease
request sent again after a lost reply finds its own token and gets the pattern.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import translated
from memory.team.ttl import TTLStrategy
from memory.team.values import MAX_VALUE_BYTES
from tiers.errors import InvalidInputError, OutcomeUnknownError

DECISION_LEASE_MS = 60_000  # a validator that dies mid-decision blocks the pattern this long


@dataclass(frozen=True)
class StagedPattern:
    """A discovered pattern awaiting validation. Fields are checked on construction."""

    pattern_id: str
    agent_id: str
    pattern_type: str
    name: str
    description: str
    confidence: float = 0.5
    code: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    staged_at: float = 0.0  # unix seconds, set when staged

    def __post_init__(self) -> None:
        validation.name(self.pattern_id, "pattern_id")
        validation.agent_id(self.agent_id)
        validation.text(self.pattern_type, "pattern_type", 128, empty=False)
        validation.text(self.name, "name", 512, empty=False)
        validation.text(self.description, "description", MAX_VALUE_BYTES)
        if self.code is not None:
            validation.text(self.code, "code", MAX_VALUE_BYTES)
        object.__setattr__(self, "confidence", validation.number(self.confidence, "confidence", low=0.0, high=1.0))
        object.__setattr__(self, "staged_at", validation.number(self.staged_at, "staged_at", low=0.0))
        if not isinstance(self.context, Mapping):
            raise InvalidInputError(f"context must be a dict, got {type(self.context).__name__}")
        object.__setattr__(self, "context", dict(self.context))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StagedPattern:
        names = {f.name for f in fields(StagedPattern)}
        return StagedPattern(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_fields(cls, given: Mapping[str, Any]) -> StagedPattern:
        """A pattern from keyword fields, naming any that are unknown or missing (not a TypeError)."""
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        problems = []
        if unknown := sorted(name for name in given if name not in names):
            problems.append(f"unknown fields: {', '.join(unknown)}")
        if missing := [name for name in required if name not in given]:
            problems.append(f"missing fields: {', '.join(missing)}")
        if problems:
            raise InvalidInputError(f"{'; '.join(problems)} (a staged pattern takes {', '.join(names)})")
        return cls(**given)


class PatternStaging:
    def __init__(self, memory: Any):
        self.memory = memory
        self._store = memory.stores.patterns()

    @translated("write")
    def stage(self, credentials: AgentCredentials, pattern: Any, fields_: Mapping[str, Any]) -> bool:
        """Stage a pattern (CONTRIBUTOR; in another agent's name VALIDATOR). False if the library has it."""
        credentials.require(AccessTier.CONTRIBUTOR, "stage_pattern")
        if pattern is None:
            pattern = StagedPattern.from_fields({"agent_id": credentials.agent_id, **fields_})
        elif fields_:
            raise InvalidInputError("give either a StagedPattern or keyword fields, not both")
        if not isinstance(pattern, StagedPattern):
            raise InvalidInputError(f"pattern must be a StagedPattern, got {type(pattern).__name__}")
        if pattern.agent_id != credentials.agent_id:
            credentials.require(AccessTier.VALIDATOR, "stage a pattern in another agent's name")
        staged_at = self.memory.clock()
        record = {f.name: getattr(pattern, f.name) for f in fields(pattern)}  # asdict: a deep copy, 10x the cost
        body = values.pack({**record, "staged_at": staged_at}, "pattern")
        ttl_ms = int(TTLStrategy.STAGED_PATTERNS) * 1000
        outcome = self._store.stage(pattern.pattern_id, body, ttl_ms, int(staged_at * 1000))
        if outcome == -1:
            raise InvalidInputError(
                f"pattern {pattern.pattern_id!r} is being promoted or rejected right now; stage it again later"
            )
        return outcome == 1

    @translated("read")
    def staged(self, credentials: AgentCredentials) -> list[StagedPattern]:
        """Patterns awaiting validation, oldest first (OBSERVER; a contributor's listing also
        forgets the index entries of expired ones, an observer's writes nothing)."""
        credentials.require(AccessTier.OBSERVER, "get_staged_patterns")
        blobs = self._store.staged(forget_expired=credentials.can_stage())
        return [StagedPattern.from_dict(values.unpack(blob)) for blob in blobs]

    def promote(self, credentials: AgentCredentials, pattern_id: str) -> Any:
        """Move a staged pattern into the library (VALIDATOR). The LibraryPattern, or None if another won."""
        credentials.require(AccessTier.VALIDATOR, "promote_pattern")
        return self._decide(credentials, pattern_id, "promoted", None)

    def reject(self, credentials: AgentCredentials, pattern_id: str, reason: str) -> bool:
        """Reject a staged pattern, keeping the reason in the library (VALIDATOR)."""
        credentials.require(AccessTier.VALIDATOR, "reject_pattern")
        validation.text(reason, "reason", values.MAX_TEXT, empty=False)
        return self._decide(credentials, pattern_id, "rejected", reason) is not None

    @translated("write")
    def _decide(self, credentials: AgentCredentials, pattern_id: str, status: str, reason: str | None) -> Any:
        validation.name(pattern_id, "pattern_id")
        library = self.memory.pattern_library
        token = secrets.token_hex(16)
        try:
            body = self._store.take_decision(pattern_id, token, DECISION_LEASE_MS)
        except OutcomeUnknownError:  # the lease may be ours: let the pattern go before saying so
            self._store.release_decision(pattern_id, token)
            raise
        if body is None:
            return None
        try:
            pattern = StagedPattern.from_dict(values.unpack(body))
            decided_at = self.memory.clock()
            recorded = library.decide(pattern, status, credentials.agent_id, decided_at, reason)
        except BaseException:
            self._store.release_decision(pattern_id, token)
            raise
        self._store.finish_decision(pattern_id, token, promoted=status == "promoted" or not recorded)
        if not recorded:
            return None  # a validator that died after writing the library promoted it; we only cleaned up
        return library.get(pattern_id)
