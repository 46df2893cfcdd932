"""What the long-term tier runs on PostgreSQL below SQLAlchemy, through psycopg on the session
SQLAlchemy checked out: a batch of new rows as one COPY, and rows read in the binary format.
The driver's errors come out as SQLAlchemy would raise them (tiers.ltm_schema.guarded turns those
into TierUnavailableError), and a session the error shows lost is invalidated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError, StatementError

from tiers.ltm_schema import ROW_COLUMNS, memories

COPY_SQL = f"COPY {memories.name} ({', '.join(ROW_COLUMNS)}) FROM STDIN"  # rows in ROW_COLUMNS order


def copy_rows(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """New rows in one COPY, where an upsert runs one statement per row. A row that exists fails
    it with a unique violation (IntegrityError), in the caller's transaction."""
    driver = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise translated(conn, COPY_SQL, None, exc) from exc


def binary_rows(conn: Any, sql: str, params: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (compiled for this dialect) in psycopg's binary format: neither the server
    nor the client turns floats and bytes into text and back, and SQLAlchemy's per-statement work
    is skipped."""
    try:
        with conn.connection.driver_connection.cursor(binary=True) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise translated(conn, sql, params, exc) from exc


def translated(conn: Any, sql: str, params: Any, exc: Exception) -> StatementError:
    """A driver error raised outside SQLAlchemy's execute, as SQLAlchemy would raise it; the
    connection is invalidated if the error means it was lost."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=lost)
