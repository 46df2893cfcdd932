"""The pattern library's SQL: one table beside the long-term tier's, in the same database.

    tiermem_patterns   one row per decided pattern, keyed by namespace (the key prefix) and
                       pattern id, indexed by type and name; status promoted | rejected

A promoted row never changes again, and the database decides who promoted it:
:meth:`PatternRows.decide` updates only rows not yet promoted, else inserts, so of any number of
concurrent promoters exactly one changes a row. SQLAlchemy's errors become TierUnavailableError("ltm") here
(tiers.ltm_schema.guarded); memory/team/library.py checks what goes in and reads what comes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Float, Index, LargeBinary, MetaData, String, Table, Text, and_, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tiers.errors import MemoryConfigException
from tiers.ltm_schema import create_racing, guarded

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

PROMOTED = "promoted"


class PatternRows:
    """The rows of one namespace. ``owned``: the engine was made for them, :meth:`close` disposes of it."""

    def __init__(self, engine: Any, namespace: str, owned: bool = False):
        if not isinstance(engine, Engine):
            raise MemoryConfigException(f"engine must be a SQLAlchemy Engine, got {type(engine).__name__}")
        self.engine = engine
        self.namespace = namespace
        self.owned = owned
        guarded(lambda: create_racing(lambda: metadata.create_all(engine)))

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()

    def decide(self, pattern_id: str, row: Mapping[str, Any]) -> bool:
        """Write a decision (every column but the key) unless the pattern is already promoted.
        True when this call wrote it."""
        return guarded(lambda: self._decide(pattern_id, row))

    def _decide(self, pattern_id: str, row: Mapping[str, Any]) -> bool:
        key = and_(patterns_table.c.namespace == self.namespace, patterns_table.c.pattern_id == pattern_id)
        with self.engine.begin() as conn:
            changed = conn.execute(update(patterns_table).where(key, patterns_table.c.status != PROMOTED).values(**row))
            if changed.rowcount == 1:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(patterns_table).values(namespace=self.namespace, pattern_id=pattern_id, **row))
            return True
        except IntegrityError:
            return False  # already there and promoted: someone else decided first

    def get(self, pattern_id: str) -> Mapping[str, Any] | None:
        query = select(patterns_table).where(
            patterns_table.c.namespace == self.namespace, patterns_table.c.pattern_id == pattern_id)
        row = guarded(lambda: self._rows(query, first=True))
        return None if row is None else row._mapping

    def find(self, pattern_type: str | None, name: str | None, status: str | None) -> list[Mapping[str, Any]]:
        """Rows by type, name and status (None: any), ordered by pattern id."""
        query = select(patterns_table).where(patterns_table.c.namespace == self.namespace)
        if pattern_type is not None:
            query = query.where(patterns_table.c.pattern_type == pattern_type)
        if name is not None:
            query = query.where(patterns_table.c.name == name)
        if status is not None:
            query = query.where(patterns_table.c.status == status)
        rows = guarded(lambda: self._rows(query.order_by(patterns_table.c.pattern_id)))
        return [row._mapping for row in rows]

    def count(self, status: str | None) -> int:
        query = select(func.count()).select_from(patterns_table).where(patterns_table.c.namespace == self.namespace)
        if status is not None:
            query = query.where(patterns_table.c.status == status)
        return int(guarded(lambda: self._rows(query, first=True))[0])

    def _rows(self, query: Any, first: bool = False) -> Any:
        with self.engine.connect() as conn:
            result = conn.execute(query)
            return result.first() if first else result.all()
