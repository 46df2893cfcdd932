"""The long-term pattern library: validated patterns in the LTM database, so they outlive Redis.

One SQLAlchemy table beside the engine's own (``tiermem_patterns`` in the same database: the
SQLite file ``<data_dir>/ltm.sqlite`` by default, or any SQLAlchemy URL), keyed by namespace (the
key prefix) and pattern id, indexed by type and name. A row records a validator's decision:
``promoted`` (in the library) or ``rejected`` (with the reason). A promoted row never changes
again, and the database decides who promoted it: ``decide`` updates only rows not yet promoted,
else inserts, so of any number of concurrent promoters exactly one changes a row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Index, LargeBinary, MetaData, String, Table, Text, and_, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from memory.errors import InvalidInputError, MemoryConfigException
from memory.team import values
from memory.team.access import agent_id
from memory.team.errors import translated
from memory.team.patterns import StagedPattern
from tiers.keys import validate_prefix
from tiers.ltm_schema import create_racing, make_engine

metadata = MetaData()

patterns_table = Table(
    "tiermem_patterns",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("pattern_id", String(128), primary_key=True),
    Column("pattern_type", String(128), nullable=False),
    Column("name", String(512), nullable=False),
    Column("description", Text, nullable=False),
    Column("code", Text),
    Column("confidence", Float, nullable=False),
    Column("agent_id", String(128), nullable=False),  # who discovered it
    Column("context", LargeBinary, nullable=False),  # msgpack
    Column("staged_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # promoted | rejected
    Column("decided_by", String(128), nullable=False),
    Column("decided_at", Float, nullable=False),
    Column("reason", Text),
    Index("tiermem_patterns_type_name", "namespace", "pattern_type", "name"),
)

PROMOTED, REJECTED = "promoted", "rejected"


def _status(value: object, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if value not in (PROMOTED, REJECTED):
        raise InvalidInputError(f"status must be {PROMOTED!r} or {REJECTED!r}{' or None' if allow_none else ''}, got {values.shown(value)}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class LibraryPattern(StagedPattern):
    """A pattern as the library holds it, with the decision taken on it."""

    status: str = PROMOTED
    decided_by: str = ""
    decided_at: float = 0.0
    reason: str | None = None


class PatternLibrary:
    def __init__(self, engine: Any, namespace: str, owned: bool = False):
        if not isinstance(engine, Engine):
            raise MemoryConfigException(f"engine must be a SQLAlchemy Engine, got {type(engine).__name__}")
        try:
            validate_prefix(namespace)
        except ValueError as exc:
            raise MemoryConfigException(str(exc).replace("key_prefix", "namespace", 1)) from None
        self.engine = engine
        self.namespace = namespace
        self.owned = owned
        create_racing(lambda: metadata.create_all(engine))

    @classmethod
    @translated("read")
    def open(cls, *, url: str | None, engine: Any, data_dir: str, namespace: str) -> "PatternLibrary":
        if engine is not None:
            return cls(engine, namespace)
        return cls(make_engine(url, os.path.join(data_dir, "ltm.sqlite")), namespace, owned=True)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()

    @translated("write")
    def decide(self, pattern: StagedPattern, status: str, decided_by: str, decided_at: float, reason: str | None) -> bool:
        """Record a decision unless the pattern is already promoted. True when this call recorded it."""
        if not isinstance(pattern, StagedPattern):
            raise InvalidInputError(f"pattern must be a StagedPattern, got {type(pattern).__name__}")
        _status(status)
        agent_id(decided_by, "decided_by")
        values.finite(decided_at, "decided_at", 0.0)
        if reason is not None:
            values.text(reason, "reason")
        row = {
            "pattern_type": pattern.pattern_type, "name": pattern.name, "description": pattern.description,
            "code": pattern.code, "confidence": pattern.confidence, "agent_id": pattern.agent_id,
            "context": values.pack(pattern.context, "pattern context"), "staged_at": pattern.staged_at,
            "status": status, "decided_by": decided_by, "decided_at": decided_at, "reason": reason,
        }
        key = and_(patterns_table.c.namespace == self.namespace, patterns_table.c.pattern_id == pattern.pattern_id)
        with self.engine.begin() as conn:
            changed = conn.execute(update(patterns_table).where(key, patterns_table.c.status != PROMOTED).values(**row))
            if changed.rowcount == 1:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(patterns_table).values(namespace=self.namespace, pattern_id=pattern.pattern_id, **row))
            return True
        except IntegrityError:
            return False  # already there and promoted: someone else decided first

    @translated("read")
    def get(self, pattern_id: str) -> LibraryPattern | None:
        """The decision on one pattern (promoted or rejected), or None."""
        agent_id(pattern_id, "pattern_id")
        with self.engine.connect() as conn:
            row = conn.execute(
                select(patterns_table).where(
                    patterns_table.c.namespace == self.namespace, patterns_table.c.pattern_id == pattern_id
                )
            ).first()
        return None if row is None else _entry(row)

    @translated("read")
    def find(
        self, pattern_type: str | None = None, name: str | None = None, status: str | None = PROMOTED
    ) -> list[LibraryPattern]:
        """Patterns by type and/or name (exact), promoted ones by default, ordered by id."""
        for what, value in (("pattern_type", pattern_type), ("name", name)):
            if value is not None:
                values.text(value, what, max_length=512)
        _status(status, allow_none=True)
        query = select(patterns_table).where(patterns_table.c.namespace == self.namespace)
        if pattern_type is not None:
            query = query.where(patterns_table.c.pattern_type == pattern_type)
        if name is not None:
            query = query.where(patterns_table.c.name == name)
        if status is not None:
            query = query.where(patterns_table.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(patterns_table.c.pattern_id)).all()
        return [_entry(row) for row in rows]

    @translated("read")
    def count(self, status: str | None = PROMOTED) -> int:
        _status(status, allow_none=True)
        query = select(func.count()).select_from(patterns_table).where(patterns_table.c.namespace == self.namespace)
        if status is not None:
            query = query.where(patterns_table.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _entry(row: Any) -> LibraryPattern:
    data = row._mapping
    return LibraryPattern(
        pattern_id=data["pattern_id"], agent_id=data["agent_id"], pattern_type=data["pattern_type"],
        name=data["name"], description=data["description"], code=data["code"], context=values.unpack(data["context"]),
        confidence=data["confidence"], staged_at=data["staged_at"], status=data["status"],
        decided_by=data["decided_by"], decided_at=data["decided_at"], reason=data["reason"],
    )
