"""Conversations in SQL (SQLite or PostgreSQL): one row per conversation, written by compare-and-set.

    tiermem_conversations   one row per (namespace, conversation_id); created when missing

The write is a single conditional upsert::

    INSERT INTO tiermem_conversations (...) VALUES (...)
    ON CONFLICT (namespace, conversation_id) DO UPDATE SET ... WHERE version = :expected
    RETURNING version

It inserts a new conversation (expected version 0, no row yet), updates one whose version is
still the one the caller read, and changes nothing (no row returned) when another writer came
first, in one statement, so no lock is held across the caller's work.

A lost reply cannot apply a write twice here: neither SQLAlchemy nor the drivers send a statement
or a COMMIT again after a failure, and the managers apply a change again only after the store
answered "another writer came first", never after an error. The statement runs in a transaction
of its own, so a failure before the COMMIT leaves nothing written (TierUnavailableError). A
COMMIT whose connection broke on PostgreSQL may or may not have committed: OutcomeUnknownError.
SQLite commits in this process, so its COMMIT always answers.

SQLAlchemy's calls block: they run on a small thread pool of the store, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tiers.conversations import StoredConversation
from tiers.errors import MemoryConfigException, MemoryRetrievalException, OutcomeUnknownError, TierUnavailableError
from tiers.ltm_schema import create_racing, make_engine

T = TypeVar("T")
TIER = "database"

metadata = MetaData()

conversations = Table(
    "tiermem_conversations",
    metadata,
    Column("namespace", String(64), primary_key=True),  # lets several applications share one table
    Column("conversation_id", String(120), primary_key=True),
    Column("version", BigInteger, nullable=False),  # writes so far: the compare-and-set token
    Column("working_memory", Text, nullable=False),
    Column("turn_count", BigInteger, nullable=False),
    Column("turns", Text, nullable=False),  # JSON [[number, message, unix time], ...]
    Column("updated_at", Float, nullable=False, index=True),
)

INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}  # the dialects with ON CONFLICT ... RETURNING


def open_engine(db: Any) -> tuple[Engine, bool]:
    """The engine for ``db`` (an SQLAlchemy Engine, or a URL it opens) and whether it was opened
    here; MemoryConfigException if it cannot hold conversations."""
    if isinstance(db, str):
        try:
            engine, owned = make_engine(db, None), True
        except (TierUnavailableError, ImportError) as exc:  # ImportError: the URL's driver is not installed
            raise MemoryConfigException(f"cannot open the conversation database: {exc}") from exc
    elif isinstance(db, Engine):
        engine, owned = db, False
    else:
        raise MemoryConfigException(f"db must be an SQLAlchemy Engine or a URL, got {type(db).__name__}")
    problem = None
    if engine.dialect.name not in INSERTS:
        problem = f"conversation memory supports {', '.join(INSERTS)}, not {engine.dialect.name}"
    elif engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        problem = "an in-memory SQLite database lives in one connection; use a file or InMemoryManager"
    if problem is not None:
        if owned:
            engine.dispose()
        raise MemoryConfigException(problem)
    return engine, owned


class SQLConversations:
    """The conversations of ``namespace`` in ``db`` (an Engine you own, or a URL opened and closed
    here); the table is created if missing. ``threads`` bounds the concurrent database calls (each
    holds a pooled connection while it runs)."""

    def __init__(self, db: Any, namespace: str, threads: int):
        self.engine, self._owned = open_engine(db)
        self.namespace = namespace
        self._insert: Any = INSERTS[self.engine.dialect.name]
        try:
            create_racing(lambda: metadata.create_all(self.engine))
        except SQLAlchemyError as exc:
            if self._owned:
                self.engine.dispose()
            raise MemoryConfigException(f"cannot create the conversation table: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tiermem-conversations")

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except SQLAlchemyError as exc:
            raise TierUnavailableError(TIER, str(exc).splitlines()[0]) from exc

    def _mine(self, conversation_id: str) -> Any:
        return (conversations.c.namespace == self.namespace) & (conversations.c.conversation_id == conversation_id)

    async def read(self, conversation_id: str) -> StoredConversation | None:
        def work() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(select(conversations).where(self._mine(conversation_id))).mappings().first()

        row = await self._run(work)
        if row is None:
            return None
        try:
            return StoredConversation(
                working_memory=str(row["working_memory"]),
                turn_count=int(row["turn_count"]),
                turns=str(row["turns"]),
                updated_at=float(row["updated_at"]),
                version=int(row["version"]),
            )
        except (TypeError, ValueError) as exc:  # a row some other writer left
            raise MemoryRetrievalException(f"conversation {conversation_id!r} in the database is unreadable: {exc!r}") from exc

    async def write_if(self, conversation_id: str, expected: int, value: StoredConversation) -> int | None:
        version = expected + 1
        values = {"version": version, "working_memory": value.working_memory, "turn_count": value.turn_count,
                  "turns": value.turns, "updated_at": value.updated_at}
        stmt = self._insert(conversations).values(namespace=self.namespace, conversation_id=conversation_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["namespace", "conversation_id"],
            set_=values,
            where=conversations.c.version == expected,
        ).returning(conversations.c.version)  # rowcount is not reliable for upserts on every driver

        def work() -> int | None:
            with self.engine.connect() as conn:
                written = conn.execute(stmt).scalar()
                _commit(conn, conversation_id)
                return written

        return version if await self._run(work) == version else None

    async def delete(self, conversation_id: str) -> bool:
        def work() -> int:
            with self.engine.begin() as conn:
                return conn.execute(delete(conversations).where(self._mine(conversation_id))).rowcount

        return bool(await self._run(work))

    async def purge_idle(self, before: float) -> int:
        """Delete the namespace's conversations last written before unix time ``before``; returns how many."""
        stmt = delete(conversations).where((conversations.c.namespace == self.namespace) & (conversations.c.updated_at < before))

        def work() -> int:
            with self.engine.begin() as conn:
                return conn.execute(stmt).rowcount

        return int(await self._run(work))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        if self._owned:
            self.engine.dispose()


def _commit(conn: Connection, conversation_id: str) -> None:
    try:
        conn.commit()
    except DBAPIError as exc:
        if exc.connection_invalidated and conn.dialect.name == "postgresql":
            raise OutcomeUnknownError(
                TIER, f"the connection broke while committing conversation {conversation_id!r}: "
                      f"{str(exc).splitlines()[0]}") from exc
        raise
