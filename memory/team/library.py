"""The long-term pattern library: validated patterns in the LTM database, so they outlive Redis.

One SQL table beside the engine's own (``tiermem_patterns`` in the same database: the SQLite file
``<data_dir>/ltm.sqlite`` by default, or any SQLAlchemy URL; tiers/coordination/library.py), keyed
by namespace (the key prefix) and pattern id, indexed by type and name. A row records a
validator's decision: ``promoted`` (in the library) or ``rejected`` (with the reason). A promoted
row never changes again, and the database decides who promoted it, so of any number of
concurrent promoters exactly one changes a row. Here: what goes in is checked, what comes out is
a LibraryPattern.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memory import validation
from memory.team import values
from memory.team.errors import translated
from memory.team.patterns import StagedPattern
from tiers.coordination.library import PROMOTED, PatternRows
from tiers.errors import InvalidInputError, MemoryConfigException
from tiers.keys import validate_prefix
from tiers.ltm_schema import make_engine

REJECTED = "rejected"


def _status(value: object, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if value not in (PROMOTED, REJECTED):
        allowed = f"{PROMOTED!r} or {REJECTED!r}" + (" or None" if allow_none else "")
        raise InvalidInputError(f"status must be {allowed}, got {validation.shown(value)}")
    return str(value)


@dataclass(frozen=True)
class LibraryPattern(StagedPattern):
    """A pattern as the library holds it, with the decision taken on it."""

    status: str = PROMOTED
    decided_by: str = ""
    decided_at: float = 0.0
    reason: str | None = None


class PatternLibrary:
    """The library of one namespace in ``engine`` (a SQLAlchemy Engine); ``owned``: close() disposes of it."""

    def __init__(self, engine: Any, namespace: str, owned: bool = False):
        try:
            validate_prefix(namespace)
        except ValueError as exc:
            raise MemoryConfigException(str(exc).replace("key_prefix", "namespace", 1)) from None
        self._rows = PatternRows(engine, namespace, owned)
        self.engine = engine
        self.namespace = namespace
        self.owned = owned

    @classmethod
    @translated("read")
    def open(cls, *, url: str | None, engine: Any, data_dir: str, namespace: str) -> PatternLibrary:
        if engine is not None:
            return cls(engine, namespace)
        return cls(make_engine(url, os.path.join(data_dir, "ltm.sqlite")), namespace, owned=True)

    def close(self) -> None:
        self._rows.close()

    @translated("write")
    def decide(self, pattern: StagedPattern, status: str, decided_by: str, decided_at: float, reason: str | None) -> bool:
        """Record a decision unless the pattern is already promoted. True when this call recorded it."""
        if not isinstance(pattern, StagedPattern):
            raise InvalidInputError(f"pattern must be a StagedPattern, got {type(pattern).__name__}")
        _status(status)
        validation.name(decided_by, "decided_by")
        validation.number(decided_at, "decided_at", low=0.0)
        if reason is not None:
            validation.text(reason, "reason", values.MAX_TEXT)
        row = {
            "pattern_type": pattern.pattern_type, "name": pattern.name, "description": pattern.description,
            "code": pattern.code, "confidence": pattern.confidence, "agent_id": pattern.agent_id,
            "context": values.pack(pattern.context, "pattern context"), "staged_at": pattern.staged_at,
            "status": status, "decided_by": decided_by, "decided_at": decided_at, "reason": reason,
        }
        return self._rows.decide(pattern.pattern_id, row)

    @translated("read")
    def get(self, pattern_id: str) -> LibraryPattern | None:
        """The decision on one pattern (promoted or rejected), or None."""
        row = self._rows.get(validation.name(pattern_id, "pattern_id"))
        return None if row is None else _entry(row)

    @translated("read")
    def find(
        self, pattern_type: str | None = None, name: str | None = None, status: str | None = PROMOTED
    ) -> list[LibraryPattern]:
        """Patterns by type and/or name (exact), promoted ones by default, ordered by id."""
        for what, value in (("pattern_type", pattern_type), ("name", name)):
            if value is not None:
                validation.text(value, what, 512)
        _status(status, allow_none=True)
        return [_entry(row) for row in self._rows.find(pattern_type, name, status)]

    @translated("read")
    def count(self, status: str | None = PROMOTED) -> int:
        return self._rows.count(_status(status, allow_none=True))


def _entry(data: Mapping[str, Any]) -> LibraryPattern:
    return LibraryPattern(
        pattern_id=data["pattern_id"], agent_id=data["agent_id"], pattern_type=data["pattern_type"],
        name=data["name"], description=data["description"], code=data["code"], context=values.unpack(data["context"]),
        confidence=data["confidence"], staged_at=data["staged_at"], status=data["status"],
        decided_by=data["decided_by"], decided_at=data["decided_at"], reason=data["reason"],
    )
