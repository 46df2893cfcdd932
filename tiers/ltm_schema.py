"""The long-term tier's tables, their migrations and the SQL engine: the schema in one place.

    tiermem_ltm                 one row per memory (namespace = the engine's key prefix); on
                                PostgreSQL hash-partitioned by agent_id (tiermem_ltm_p0 ...)
    tiermem_ltm_gone            deleted rows with the change stamp of their deletion
    tiermem_zstd_dictionaries   zstd dictionaries by content id (tiers/dictionaries.py)
    tiermem_dictionaries        numbered dictionaries (schemas older than content ids), read-only
    tiermem_deployments         which deployment each namespace belongs to (tiers/deployment.py)
    tiermem_schema              the schema version (MIGRATIONS)

On PostgreSQL a new ``tiermem_ltm`` is ``PARTITION BY HASH (agent_id)`` into ``partitions``
tables (LTMConfig.partitions; 1: one plain table). Every query of the tier names one agent, so it
reads one partition, by that partition's indices: its cost grows with the log of the partition,
not with the table. The indices are declared once, on the parent. A table that exists keeps its
layout, partitioned or not (:func:`ltm_partitions` reads it): both answer the same SQL. SQLite
has no partitions: its table is clustered by the primary key (WITHOUT ROWID) instead.

SQLAlchemy's errors become tiermem's here (:func:`guarded`), for every module that runs SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from tiers.async_bridge import offload, pause
from tiers.errors import TierUnavailableError

T = TypeVar("T")

metadata = MetaData()

memories = Table(
    "tiermem_ltm",
    metadata,
    Column("namespace", String(64), primary_key=True),  # the engine's key prefix
    Column("agent_id", String(128), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    # byte order on every database, so ties sort as they do in Redis
    Column("memory_id", String(255).with_variant(String(255, collation="C"), "postgresql"), primary_key=True),
    Column("memory_type", String(16), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("importance", Float, nullable=False),
    Column("retrieval_count", Integer, nullable=False, default=0),  # reads over the memory's life
    Column("reads_in_ltm", Integer, nullable=False, default=0),  # reads since it last arrived here
    Column("last_access_time", Float),
    Column("last_access_step", BigInteger),
    Column("dict_id", BigInteger, nullable=False),  # see tiers/dictionaries.py
    Column("raw_size", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("vectors", LargeBinary),  # msgpack [packed embeddings, position] (derived fields)
    # the agent's LTM change stamp of the last write to the row's derived fields (indices read
    # what changed after the stamp their persisted copy was taken at); NULL before migration 1
    Column("changed", BigInteger),
    # 1: the memory still waits for its text vector (the text embedder's queue for LTM rows;
    # Redis queues only what STM and IM hold, so its queue stays within their capacity)
    Column("text_pending", Integer, nullable=False, default=0),
    Index("tiermem_ltm_id", "namespace", "agent_id", "memory_id", unique=True),
    Index("tiermem_ltm_changed", "namespace", "agent_id", "changed"),
    # only the rows still waiting: a row written with its text vector (or with text search off)
    # costs the index nothing
    Index("tiermem_ltm_text_pending", "namespace", "agent_id", "step",
          sqlite_where=text("text_pending = 1"), postgresql_where=text("text_pending = 1")),
    Index("tiermem_ltm_type", "namespace", "agent_id", "memory_type", "step", "memory_id"),
    Index("tiermem_ltm_importance", "namespace", "agent_id", "importance", "memory_id"),
    sqlite_with_rowid=False,
)

ROW_COLUMNS = tuple(column.name for column in memories.columns)  # a full row, in the table's order

gone = Table(  # rows deleted from LTM, with the change stamp of their deletion (indices catch up)
    "tiermem_ltm_gone",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("agent_id", String(128), primary_key=True),
    Column("changed", BigInteger, primary_key=True),
    Column("memory_id", String(255), primary_key=True),
)

# zstd dictionaries as LTMs numbered them (1, 2, ...) before dictionaries were named by their
# content; still read for payloads that name such a number (tiers/dictionaries.py)
numbered_dictionaries = Table(
    "tiermem_dictionaries",
    metadata,
    Column("dict_id", Integer, primary_key=True, autoincrement=True),
    Column("created", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

dictionaries = Table(  # zstd dictionaries by content id (tiers/dictionaries.py)
    "tiermem_zstd_dictionaries",
    metadata,
    Column("dict_id", BigInteger, primary_key=True, autoincrement=False),
    Column("created", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

deployments = Table(  # the deployment each namespace (key prefix) belongs to (tiers/deployment.py)
    "tiermem_deployments",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("deployment_id", String(32), nullable=False),
    Column("created", Float, nullable=False),
    Column("dictionary", BigInteger),  # the dictionary new payloads are compressed with
)

schema_version = Table("tiermem_schema", metadata, Column("version", Integer, primary_key=True))

# Append-only: each entry upgrades the schema from its index to the next version. A statement is
# SQL, or (dialects, SQL) for one that only those databases need. New tables need no entry:
# create_all makes them.
MIGRATIONS: list[list[str | tuple[tuple[str, ...], str]]] = [
    ["ALTER TABLE tiermem_ltm ADD COLUMN changed BIGINT",
     "CREATE INDEX tiermem_ltm_changed ON tiermem_ltm (namespace, agent_id, changed)"],
    # content ids of dictionaries take 63 bits (SQLite's INTEGER holds them already)
    [(("postgresql",), "ALTER TABLE tiermem_ltm ALTER COLUMN dict_id TYPE BIGINT")],
    ["ALTER TABLE tiermem_ltm ADD COLUMN text_pending INTEGER NOT NULL DEFAULT 0",
     "CREATE INDEX tiermem_ltm_text_pending ON tiermem_ltm (namespace, agent_id, step) WHERE text_pending = 1"],
]
SCHEMA_VERSION = 1 + len(MIGRATIONS)
SCHEMA_ATTEMPTS = 4  # concurrent first-time creation by several processes
DEFAULT_PARTITIONS = 16  # PostgreSQL: hash partitions of a new tiermem_ltm (docs/scale.md#postgresql)
MAX_PARTITIONS = 1024


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    """Prepared statements (psycopg prepares a statement run five times) keep one generic plan.
    PostgreSQL would otherwise plan a query of a partitioned tiermem_ltm again at every run: it
    prices the generic plan as if it read every partition, where it reads the agent's one
    (pruned when it starts). The tier's queries name their agent and filter on indexed columns
    (constants where a partial index needs one), so their generic plans are the custom ones."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    dbapi_connection.commit()


def make_engine(url: str | None, db_path: str | Path | None, *, generic_plans: bool = False) -> Engine:
    """An engine for ``url``, or for a SQLite file at ``db_path``; TierUnavailableError if neither
    works. ``generic_plans``: PostgreSQL sessions that keep generic plans (the long-term tier's
    engine: see _postgres_session)."""
    try:
        if url is None:
            path = Path(db_path)  # type: ignore[arg-type]
            path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        engine = create_engine(url)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        raise TierUnavailableError("ltm", f"cannot use {url or db_path!r}: {exc}") from exc
    return _sessions(engine, generic_plans)


def _sessions(engine: Engine, generic_plans: bool) -> Engine:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql" and generic_plans:
        event.listen(engine, "connect", _postgres_session)
    return engine


def create_racing(create: Callable[[], None]) -> None:
    """Run ``create`` (tables made if missing) when another process or thread may be doing the
    same at the same moment (both see no table, one CREATE fails): try again, and the next pass
    finds them."""
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            return create()
        except (OperationalError, IntegrityError, ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            pause(0.05 * (attempt + 1))


def create_schema(engine: Engine, partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create or upgrade the tables (safe while other processes do the same). On PostgreSQL a
    missing ``tiermem_ltm`` is made with ``partitions`` hash partitions (1: a plain table)."""
    create_racing(lambda: _create_schema_once(engine, partitions))


def _create_schema_once(engine: Engine, partitions: int) -> None:
    if engine.dialect.name == "postgresql" and partitions > 1:
        with engine.begin() as conn:  # one transaction: a racing process sees all of it or none
            if not inspect(conn).has_table(memories.name):
                _create_partitioned(conn, partitions)
    metadata.create_all(engine)
    with engine.begin() as conn:
        version = conn.execute(select(func.max(schema_version.c.version))).scalar()
        if version is None:
            conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
            return
        for migration in MIGRATIONS[version - 1 :]:
            for statement in migration:
                dialects, sql = statement if isinstance(statement, tuple) else (None, statement)
                if dialects is None or engine.dialect.name in dialects:
                    conn.execute(text(sql))
        if version < SCHEMA_VERSION:
            conn.execute(update(schema_version).values(version=SCHEMA_VERSION))


def _create_partitioned(conn: Connection, partitions: int) -> None:
    """tiermem_ltm as ``partitions`` hash partitions of agent_id, with its indices on the parent
    (PostgreSQL creates them on every partition). A partition's name is tiermem_ltm_p<remainder>."""
    parent = memories.to_metadata(MetaData())
    parent.dialect_options["postgresql"]["partition_by"] = "HASH (agent_id)"
    parent.create(conn)
    for remainder in range(partitions):
        conn.execute(text(f"CREATE TABLE {memories.name}_p{remainder} PARTITION OF {memories.name} "
                          f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {remainder})"))


def ltm_partitions(conn: Connection) -> int:
    """How many partitions tiermem_ltm has: 1 for a plain table (SQLite's, or a PostgreSQL table
    made unpartitioned), else its hash partitions."""
    if conn.dialect.name != "postgresql":
        return 1
    return int(conn.execute(text(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(:table)"), {"table": memories.name}).scalar()
        or 1)


def guarded(run: Callable[[], T]) -> T:
    """Run SQL; TierUnavailableError("ltm", ...) if the database failed. Under the async API, in
    the engine's SQL thread (tiers/async_bridge.offload): the event loop runs on meanwhile."""
    try:
        return offload(run)
    except SQLAlchemyError as exc:
        raise TierUnavailableError("ltm", str(exc).splitlines()[0]) from exc
