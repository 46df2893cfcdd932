"""Conflicts between agents' positions, kept 7 days, resolved by a validator.

A ConflictContext holds each agent's position (what it proposes, how confident it is, an
optional weight such as its track record) and its interests. ``resolve`` (VALIDATOR) picks a
winner by a named strategy and records the resolution in the conflict:

- ``highest_confidence``: the position with the highest confidence;
- ``weighted``: the highest confidence x weight (weight defaults to 1.0).

Ties go to the agent id that sorts first, so a resolution is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import NotFoundError, translated
from memory.team.ttl import TTLStrategy
from tiers.errors import InvalidInputError

STRATEGIES = ("highest_confidence", "weighted")


@dataclass
class ConflictContext:
    """``positions``: agent id -> {"position": ..., "confidence": 0..1, "weight": >= 0 (optional)}."""

    conflict_id: str
    positions: dict[str, dict[str, Any]]
    interests: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    resolved: bool = False
    resolution: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field (again before it is stored: the fields can be changed after construction)."""
        validation.name(self.conflict_id, "conflict_id")
        if not isinstance(self.positions, Mapping) or len(self.positions) < 2:
            raise InvalidInputError("a conflict needs positions of at least two agents")
        for agent, position in self.positions.items():
            validation.agent_id(agent)
            if not isinstance(position, Mapping) or "position" not in position:
                raise InvalidInputError(f"the position of {agent!r} must be a dict with a 'position' entry")
            validation.number(position.get("confidence", 0.5), f"confidence of {agent!r}", low=0.0, high=1.0)
            validation.number(position.get("weight", 1.0), f"weight of {agent!r}", low=0.0)
        if not isinstance(self.interests, Mapping):
            raise InvalidInputError("interests must be a dict of agent id -> list of interests")
        validation.text(self.description, "description", values.MAX_VALUE_BYTES)
        if not isinstance(self.resolved, bool):
            raise InvalidInputError(f"resolved must be a bool, got {type(self.resolved).__name__}")
        if self.resolution is not None and not isinstance(self.resolution, Mapping):
            raise InvalidInputError(f"resolution must be a dict or None, got {type(self.resolution).__name__}")

    def choose(self, strategy: str) -> tuple[str, float]:
        """(winning agent, its score) under ``strategy``."""
        _strategy(strategy)

        def score(agent: str) -> float:
            position = self.positions[agent]
            confidence = float(position.get("confidence", 0.5))
            return confidence * float(position.get("weight", 1.0)) if strategy == "weighted" else confidence

        winner = min(sorted(self.positions), key=lambda agent: -score(agent))
        return winner, score(winner)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _strategy(value: object) -> str:
    if not isinstance(value, str) or value not in STRATEGIES:
        raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}; got {validation.shown(value)}")
    return value


@translated("write")
def record(memory: Any, credentials: AgentCredentials, conflict: ConflictContext) -> bool:
    credentials.require(AccessTier.CONTRIBUTOR, "record_conflict")
    if not isinstance(conflict, ConflictContext):
        raise InvalidInputError(f"conflict must be a ConflictContext, got {type(conflict).__name__}")
    conflict.validate()
    blob = values.pack({**conflict.to_dict(), "recorded_by": credentials.agent_id}, "conflict")
    memory.stores.conflicts.put(conflict.conflict_id, blob, int(TTLStrategy.CONFLICT_CONTEXT) * 1000)
    return True


@translated("read")
def get(memory: Any, credentials: AgentCredentials, conflict_id: str) -> ConflictContext:
    credentials.require(AccessTier.OBSERVER, "get_conflict")
    validation.name(conflict_id, "conflict_id")
    return _load(memory, conflict_id)[0]


def _load(memory: Any, conflict_id: str) -> tuple[ConflictContext, bytes]:
    blob = memory.stores.conflicts.get(conflict_id)
    if blob is None:
        raise NotFoundError(f"no conflict {conflict_id!r} (never recorded, or older than 7 days)")
    data = values.unpack(blob)
    data.pop("recorded_by", None)
    return ConflictContext(**data), blob


@translated("write")
def resolve(memory: Any, credentials: AgentCredentials, conflict_id: str, strategy: str) -> ConflictContext:
    """Pick the winning position by ``strategy`` and record it (VALIDATOR). Resolving twice keeps the first."""
    credentials.require(AccessTier.VALIDATOR, "resolve_conflict")
    validation.name(conflict_id, "conflict_id")
    _strategy(strategy)
    while True:
        conflict, blob = _load(memory, conflict_id)
        if conflict.resolved:
            return conflict
        winner, score = conflict.choose(strategy)
        conflict.resolved = True
        conflict.resolution = {
            "strategy": strategy,
            "winner": winner,
            "position": conflict.positions[winner]["position"],
            "score": score,
            "resolved_by": credentials.agent_id,
            "resolved_at": memory.clock(),
        }
        recorded_by = values.unpack(blob).get("recorded_by")
        new_blob = values.pack({**conflict.to_dict(), "recorded_by": recorded_by}, "conflict")
        if memory.stores.conflicts.replace(conflict_id, blob, new_blob):  # else it changed: read it again
            return conflict
