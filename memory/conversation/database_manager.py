"""DatabaseMemoryManager: one row per conversation in any SQLite or PostgreSQL database.

The write is a single conditional upsert::

    INSERT INTO tiermem_conversations (...) VALUES (...)
    ON CONFLICT (namespace, conversation_id) DO UPDATE SET ... WHERE version = :expected
    RETURNING version

It inserts a new conversation (expected version 0, no row yet), updates one whose version is
still the one the caller read, and changes nothing (no row returned) when another writer came
first, in one statement, so no lock is held across the caller's work. SQLAlchemy's calls are
blocking: they run on a small thread pool of the manager, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from sqlalchemy import BigInteger, Column, Float, MetaData, String, Table, Text, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.manager import MemoryManager
from memory.conversation.state import ConversationMemory
from memory.errors import MemoryAPIException, MemoryConfigException, MemoryRetrievalException, MemoryStoreException, TierUnavailableError
from tiers.keys import validate_prefix
from tiers.ltm_schema import make_engine

T = TypeVar("T")

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

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class DatabaseMemoryManager(MemoryManager):
    """Conversations in a SQL database: an SQLAlchemy ``Engine`` you own, or a URL it opens.

    The table is created on construction if missing. ``threads`` bounds the concurrent database
    calls (each holds a pooled connection while it runs).
    """

    def __init__(
        self,
        db: Engine | str,
        *,
        namespace: str = "tiermem",
        threads: int = 4,
        conflict_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(conflict_timeout=conflict_timeout, clock=clock)
        try:
            self.namespace = validate_prefix(namespace)
        except ValueError as exc:
            raise InvalidConversationError(str(exc).replace("key_prefix", "namespace")) from None
        threads = validation.count(threads, "threads", minimum=1, maximum=1024, error=InvalidConversationError)
        if isinstance(db, str):
            validation.text(db, "db", 4096, error=InvalidConversationError)
            try:
                self._engine, self._owned = make_engine(db, None), True
            except (TierUnavailableError, ImportError) as exc:  # ImportError: the URL's driver is not installed
                raise MemoryConfigException(f"cannot open the conversation database: {exc}") from exc
        elif isinstance(db, Engine):
            self._engine, self._owned = db, False
        else:
            raise MemoryConfigException(f"db must be an SQLAlchemy Engine or a URL, got {type(db).__name__}")
        dialect = self._engine.dialect.name
        if dialect not in SUPPORTED_DIALECTS:
            raise MemoryConfigException(f"conversation memory supports {', '.join(SUPPORTED_DIALECTS)}, not {dialect}")
        if dialect == "sqlite" and self._engine.url.database in (None, "", ":memory:"):
            raise MemoryConfigException("an in-memory SQLite database lives in one connection; use a file or InMemoryManager")
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        self._insert = dialect_insert
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tiermem-conversations")
        try:
            metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            self._executor.shutdown()
            raise MemoryConfigException(f"cannot create the conversation table: {exc}") from exc

    async def _run(self, work: Callable[[], T]) -> T:
        if self._closed:
            raise MemoryAPIException("this DatabaseMemoryManager is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    def _mine(self, conversation_id: str) -> Any:
        return (conversations.c.namespace == self.namespace) & (conversations.c.conversation_id == conversation_id)

    async def _read(self, conversation_id: str) -> ConversationMemory | None:
        def work() -> Any:
            with self._engine.connect() as conn:
                return conn.execute(select(conversations).where(self._mine(conversation_id))).mappings().first()

        try:
            row = await self._run(work)
        except SQLAlchemyError as exc:
            raise MemoryRetrievalException(f"the database did not answer for conversation {conversation_id!r}: {exc}") from exc
        if row is None:
            return None
        try:
            return ConversationMemory(
                conversation_id=conversation_id,
                working_memory=row["working_memory"],
                turn_count=int(row["turn_count"]),
                turns=ConversationMemory.turns_from_json(row["turns"]),
                updated_at=float(row["updated_at"]),
                version=int(row["version"]),
            )
        except (TypeError, ValueError) as exc:  # a row some other writer left
            raise MemoryRetrievalException(f"conversation {conversation_id!r} in the database is unreadable: {exc!r}") from exc

    async def _write_if(self, memory: ConversationMemory, previous: ConversationMemory) -> int | None:
        expected_version = previous.version
        version = expected_version + 1
        values = {
            "version": version,
            "working_memory": memory.working_memory,
            "turn_count": memory.turn_count,
            "turns": memory.turns_json(),
            "updated_at": memory.updated_at,
        }
        stmt = self._insert(conversations).values(namespace=self.namespace, conversation_id=memory.conversation_id, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["namespace", "conversation_id"],
            set_=values,
            where=conversations.c.version == expected_version,
        ).returning(conversations.c.version)  # rowcount is not reliable for upserts on every driver

        def work() -> int | None:
            with self._engine.begin() as conn:
                return conn.execute(stmt).scalar()

        try:
            written = await self._run(work)
        except SQLAlchemyError as exc:
            raise MemoryStoreException(f"the database did not store conversation {memory.conversation_id!r}: {exc}") from exc
        return version if written == version else None

    async def _delete(self, conversation_id: str) -> bool:
        def work() -> int:
            with self._engine.begin() as conn:
                return conn.execute(delete(conversations).where(self._mine(conversation_id))).rowcount

        try:
            return bool(await self._run(work))
        except SQLAlchemyError as exc:
            raise MemoryStoreException(f"the database did not delete conversation {conversation_id!r}: {exc}") from exc

    async def purge_idle(self, idle_for: float) -> int:
        """Delete conversations not written for ``idle_for`` seconds (a retention policy); returns how many."""
        cutoff = self._clock() - validation.seconds(idle_for, "idle_for", zero=True, error=InvalidConversationError)
        stmt = delete(conversations).where((conversations.c.namespace == self.namespace) & (conversations.c.updated_at < cutoff))

        def work() -> int:
            with self._engine.begin() as conn:
                return conn.execute(stmt).rowcount

        try:
            return int(await self._run(work))
        except SQLAlchemyError as exc:
            raise MemoryStoreException(f"the database did not purge idle conversations: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        if self._owned:
            self._engine.dispose()
