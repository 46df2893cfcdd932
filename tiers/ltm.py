"""The long-term tier: any SQLAlchemy database, a SQLite file by default (schema: tiers/ltm_schema.py).

Payloads are zstd-compressed with a dictionary trained on the data (kept here and in Redis, so
LTM can always be read on its own: tiers/dictionaries.py). Every field a query filters on is a
column: agent, step, type and importance are indexed, attributes are matched on the decoded
payload. Writes are upserts keyed by ``memory_id``, so redoing an interrupted move is harmless
(invariant 1).

On PostgreSQL a batch of new rows goes in as one COPY (a batch holding a row that is already
there is upserted instead), and reads run without a transaction of their own (autocommit: one
round trip each, not BEGIN, the query and ROLLBACK). A range is built once per shape of query
and read in psycopg's binary format (both below SQLAlchemy: tiers/ltm_postgres.py); the engine's
sessions keep generic plans (tiers/ltm_schema.py), so a prepared range is not planned again at
every call.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import msgpack
from sqlalchemy import Float, and_, bindparam, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from tiers.async_bridge import offload
from tiers.base import DerivedRow
from tiers.codec import PayloadCodec
from tiers.errors import TierUnavailableError
from tiers.ltm_postgres import binary_rows, copy_rows
from tiers.ltm_schema import DEFAULT_PARTITIONS, ROW_COLUMNS, create_schema, gone, guarded, ltm_partitions, memories
from tiers.record import NO_EMBEDDINGS, Embeddings, MemoryRecord

RECORD_COLUMNS = tuple(
    memories.c[name]
    for name in (
        "memory_id", "agent_id", "step", "memory_type", "timestamp", "importance", "retrieval_count",
        "last_access_time", "last_access_step", "dict_id", "payload", "vectors",
    )
)

# the rows of the partial index tiermem_ltm_text_pending, spelled as its predicate is: a constant, not
# a bound parameter, so a generic plan (PostgreSQL, tiers/ltm_schema.py) still proves it uses the index
WAITING = memories.c.text_pending == literal_column("1")
RANGE_COLUMNS = {"step": memories.c.step, "importance": memories.c.importance}  # the orders range answers in

# What the in-process indices read (indices/catalog.py): the payload for the attribute index.
DERIVED_COLUMNS = (memories.c.memory_id, memories.c.step, memories.c.memory_type, memories.c.importance,
                   memories.c.vectors, memories.c.dict_id, memories.c.payload)


def _pack_derived(embeddings: Embeddings, position: tuple[float, ...] | None) -> bytes | None:
    packed = embeddings.pack()
    if packed is None and position is None:
        return None
    return msgpack.packb([packed, position], use_bin_type=True)


def _unpack_derived(blob: bytes | None) -> tuple[Embeddings, tuple[float, ...] | None]:
    if blob is None:
        return NO_EMBEDDINGS, None
    packed, position = msgpack.unpackb(blob, raw=False)
    return Embeddings.unpack(packed), None if position is None else tuple(position)


def _padded(values: list[Any]) -> list[Any]:
    """``values`` grown to a power-of-two length by repeating the last (harmless inside IN)."""
    size = 1
    while size < len(values):
        size *= 2
    return values + [values[-1]] * (size - len(values))


class SQLTier:
    name = "ltm"

    def __init__(self, engine: Engine, namespace: str, owned: bool = True, partitions: int = DEFAULT_PARTITIONS):
        """``partitions``: PostgreSQL's hash partitions when this creates the table (tiers/ltm_schema.py)."""
        self.engine = engine
        self.namespace = namespace
        self.owned = owned  # False for an engine the caller passed in: the caller disposes it
        self.codec: PayloadCodec | None = None  # attached by the engine after construction
        self._dialect = engine.dialect.name
        guarded(lambda: create_schema(engine, partitions))
        self.partitions = guarded(self._layout)  # what the table has, whatever was asked
        # reads: PostgreSQL without BEGIN and ROLLBACK around each (one statement per snapshot
        # either way, at its default READ COMMITTED); SQLite as it is
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT") if self._dialect == "postgresql" else engine
        self._upsert = self._build_upsert()
        self._keyed_statements: dict[int, tuple[str, Any]] = {}
        self._range_statements: dict[tuple[Any, ...], tuple[Any, str | None]] = {}
        if self._upsert is not None:
            # compiled once and run through the driver: SQLAlchemy's per-row parameter handling
            # costs more than the insert itself on the maintenance path
            compiled = self._upsert.compile(dialect=engine.dialect)
            self._upsert_sql, self._upsert_order = compiled.string, compiled.positiontup
            if self._upsert_order is not None and tuple(self._upsert_order) != ROW_COLUMNS:
                raise AssertionError(f"upsert parameters {self._upsert_order} are not in ROW_COLUMNS order")

    def _build_upsert(self) -> Any:
        refreshed = ("importance", "retrieval_count", "reads_in_ltm", "last_access_time", "last_access_step",
                     "vectors", "changed", "text_pending")
        if self._dialect in ("sqlite", "postgresql"):
            dialect_insert: Any = sqlite.insert if self._dialect == "sqlite" else postgresql.insert
            stmt = dialect_insert(memories)
            return stmt.on_conflict_do_update(
                index_elements=["namespace", "agent_id", "memory_id"], set_={name: stmt.excluded[name] for name in refreshed}
            )
        return None  # other databases: delete then insert in one transaction

    # -- writes -------------------------------------------------------------------------------
    def _row(self, record: MemoryRecord, changed: int | None, text_pending: bool) -> tuple[Any, ...]:
        """The record as a row, in ROW_COLUMNS order. A payload IM compressed with the dictionary
        in use is kept as it is (it decompresses to the same contents; compressing them again
        would only repeat the work)."""
        codec: PayloadCodec = self.codec  # type: ignore[assignment]
        stored = record.stored_payload
        if stored is not None and stored[0] == codec.current:
            dict_id, payload = stored
        else:
            dict_id, payload = codec.compress(record.contents_blob)
        return (
            self.namespace, record.agent_id, record.step_number, record.memory_id, record.memory_type,
            record.timestamp, record.importance_score, record.retrieval_count, 0, record.last_access_time,
            record.last_access_step, dict_id, len(record.contents_blob), payload,
            _pack_derived(record.embeddings, record.position), changed, 1 if text_pending else 0,
        )

    def put_many(
        self, agent_id: str, records: Sequence[MemoryRecord], now: float | None = None, changed: int | None = None,
        text_pending: Collection[str] = (),
    ) -> None:
        """Upsert records; ``changed`` is the agent's LTM change stamp for this write, and the ids
        in ``text_pending`` still wait for their text vectors (:meth:`text_pending`)."""
        if any(record.agent_id != agent_id for record in records):
            raise ValueError(f"put_many for {agent_id!r} got another agent's record")
        if not records:
            return
        rows = [self._row(record, changed, record.memory_id in text_pending) for record in records]

        def run() -> None:
            if self._dialect == "postgresql":
                try:
                    with self.engine.begin() as conn:
                        copy_rows(conn, rows)
                    return
                except IntegrityError:
                    pass  # a row is there already (a move being redone): upsert them all
            with self.engine.begin() as conn:
                if self._upsert is not None:
                    positional = self._upsert_order is not None
                    params = rows if positional else [dict(zip(ROW_COLUMNS, row)) for row in rows]
                    conn.exec_driver_sql(self._upsert_sql, params)
                else:
                    ids = [record.memory_id for record in records]
                    conn.execute(delete(memories).where(self._mine(agent_id), memories.c.memory_id.in_(ids)))
                    conn.execute(insert(memories), [dict(zip(ROW_COLUMNS, row)) for row in rows])

        self._guard(run)

    def delete_many(
        self, agent_id: str, memory_ids: Sequence[str], drop_access: bool = False, changed: int | None = None
    ) -> int:
        """Delete rows; with a change stamp, each deletion is remembered for the indices."""
        if not memory_ids:
            return 0

        def run() -> int:
            removed = 0
            with self.engine.begin() as conn:
                for where, located in list(self._keyed(conn, agent_id, memory_ids)):
                    removed += conn.execute(delete(memories).where(where)).rowcount
                    if changed is not None:
                        conn.execute(insert(gone), [
                            {"namespace": self.namespace, "agent_id": agent_id, "changed": changed, "memory_id": m}
                            for _, m in located])
            return removed

        return self._guard(run)

    def clear(self, agent_id: str) -> int:
        def run() -> int:
            with self.engine.begin() as conn:
                conn.execute(delete(gone).where(gone.c.namespace == self.namespace, gone.c.agent_id == agent_id))
                return conn.execute(delete(memories).where(self._mine(agent_id))).rowcount

        return self._guard(run)

    def set_importance(self, agent_id: str, memory_id: str, importance: float, changed: int | None = None) -> bool:
        def run() -> bool:
            with self.engine.begin() as conn:
                found = 0
                for where, _ in list(self._keyed(conn, agent_id, [memory_id])):
                    found += conn.execute(
                        update(memories).where(where).values(importance=importance, changed=changed)).rowcount
                return found > 0

        return self._guard(run)

    def derived(
        self, agent_id: str, memory_ids: Sequence[str] | None = None, batch: int = 5000
    ) -> Iterator[list[DerivedRow]]:
        """What the in-process indices need (DerivedRow): chunks, for some ids or all; each read
        where guarded SQL runs (under the async API, in the engine's SQL thread)."""
        chunks = self._derived(agent_id, memory_ids, batch)
        while (chunk := offload(next, chunks, None)) is not None:
            yield chunk

    def _derived(self, agent_id: str, memory_ids: Sequence[str] | None, batch: int) -> Iterator[list[DerivedRow]]:
        try:
            with self.engine.connect() as conn:
                if memory_ids is not None:
                    for where, _ in list(self._keyed(conn, agent_id, memory_ids)):
                        yield self._derived_rows(conn.execute(select(*DERIVED_COLUMNS).where(where)).all())
                    return
                result = conn.execution_options(yield_per=batch).execute(
                    select(*DERIVED_COLUMNS).where(self._mine(agent_id)))
                for rows in result.partitions(batch):
                    yield self._derived_rows(rows)
        except SQLAlchemyError as exc:
            raise TierUnavailableError(self.name, str(exc)) from exc

    def _derived_rows(self, rows: Any) -> list[DerivedRow]:
        decompress = self.codec.decompress  # type: ignore[union-attr]
        return [(row[0], row[1], row[2], row[3], *_unpack_derived(row[4]), decompress(row[5], row[6])) for row in rows]

    def changed_since(self, agent_id: str, stamp: int) -> tuple[list[DerivedRow], list[str]]:
        """What changed after change stamp ``stamp``: the derived fields of rows written since
        (as :meth:`derived`) and the ids deleted since."""
        def run() -> tuple[list[Any], list[str]]:
            with self._reads.connect() as conn:
                rows = conn.execute(select(*DERIVED_COLUMNS).where(self._mine(agent_id), memories.c.changed > stamp)).all()
                deleted = conn.execute(select(gone.c.memory_id).where(
                    gone.c.namespace == self.namespace, gone.c.agent_id == agent_id, gone.c.changed > stamp)).all()
                return self._derived_rows(rows), [r[0] for r in deleted]

        return self._guard(run)

    def set_embeddings(self, agent_id: str, embeddings: dict[str, Embeddings], changed: int | None = None) -> list[str]:
        """Replace the vectors of memories held here; returns the ids that were found."""
        if not embeddings:
            return []

        def run() -> list[str]:
            found = []
            with self.engine.begin() as conn:
                for where, _ in list(self._keyed(conn, agent_id, list(embeddings))):
                    rows = conn.execute(select(memories.c.step, memories.c.memory_id, memories.c.vectors).where(where)).all()
                    for step, memory_id, vectors in rows:
                        _, position = _unpack_derived(vectors)
                        conn.execute(
                            update(memories).where(self._mine(agent_id), memories.c.step == step,
                                                   memories.c.memory_id == memory_id)
                            .values(vectors=_pack_derived(embeddings[memory_id], position), changed=changed,
                                    text_pending=0))
                        found.append(memory_id)
            return found

        return self._guard(run)

    def add_reads(self, agent_id: str, reads: dict[str, tuple[int, float | None, int | None]]) -> None:
        """Flush read counts gathered in Redis: memory_id -> (extra reads, last time, last step)."""
        if not reads:
            return
        stmt = (
            update(memories)
            .where(memories.c.namespace == self.namespace, memories.c.agent_id == bindparam("a"),
                   memories.c.step == bindparam("k"), memories.c.memory_id == bindparam("m"))
            .values(
                retrieval_count=memories.c.retrieval_count + bindparam("n"),
                reads_in_ltm=memories.c.reads_in_ltm + bindparam("n"),
                last_access_time=func.coalesce(bindparam("t"), memories.c.last_access_time),
                last_access_step=func.coalesce(bindparam("s"), memories.c.last_access_step),
            )
        )

        def run() -> None:
            with self.engine.begin() as conn:
                steps = {m: k for _, located in list(self._keyed(conn, agent_id, list(reads))) for k, m in located}
                params = [{"a": agent_id, "k": steps[mid], "m": mid, "n": n, "t": t, "s": s}
                          for mid, (n, t, s) in reads.items() if mid in steps]
                if params:
                    conn.execute(stmt, params)

        self._guard(run)

    # -- reads --------------------------------------------------------------------------------
    def get_many(
        self, agent_id: str, memory_ids: Sequence[str], now: float | None = None, steps: Sequence[int] | None = None
    ) -> list[MemoryRecord]:
        """Rows by id; LTM never counts reads itself (the engine counts them in Redis).
        ``steps`` (aligned with the ids, from an index that knows them) saves looking them up."""
        if not memory_ids:
            return []

        def run() -> list[MemoryRecord]:
            out: list[MemoryRecord] = []
            with self._reads.connect() as conn:
                if steps is not None:
                    for id_chunk, step_chunk in zip(_chunks(list(memory_ids), 500), _chunks(list(steps), 500)):
                        out += [self._decode(row) for row in self._select_by_key(conn, agent_id, step_chunk, id_chunk)]
                    return out
                for where, _ in self._keyed(conn, agent_id, memory_ids):
                    out += [self._decode(row) for row in conn.execute(select(*RECORD_COLUMNS).where(where)).all()]
            return out

        return self._guard(run)

    def range(
        self,
        agent_id: str,
        *,
        by: str = "step",
        lo: float | None = None,
        hi: float | None = None,
        memory_type: str | None = None,
        reverse: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[MemoryRecord]:
        """Rows in (index, memory_id) order, the same order the Redis tiers answer in."""
        if by not in RANGE_COLUMNS:
            raise ValueError(f"unknown index {by!r}")
        shape = (by, memory_type is not None, lo is not None, hi is not None, reverse, offset != 0, limit is not None)
        stmt, sql = self._range_statements.get(shape) or self._range_statement(*shape)
        params = {"ns": self.namespace, "ag": agent_id, "t": memory_type, "lo": lo, "hi": hi, "off": offset, "lim": limit}

        def run() -> list[MemoryRecord]:
            with self._reads.connect() as conn:
                rows = binary_rows(conn, sql, params) if sql is not None else conn.execute(stmt, params).all()
            return [self._decode(row) for row in rows]

        return self._guard(run)

    def _range_statement(self, by: str, typed: bool, low: bool, high: bool, reverse: bool, skip: bool,
                         limited: bool) -> tuple[Any, str | None]:
        """The range query of one shape, built once with bind parameters: the statement, and on
        PostgreSQL its SQL for the driver. The bounds are compared as floats (a step bound may be
        fractional, and no cast to the column's type may round it)."""
        column = RANGE_COLUMNS[by]
        conditions = [memories.c.namespace == bindparam("ns"), memories.c.agent_id == bindparam("ag")]
        if typed:
            conditions.append(memories.c.memory_type == bindparam("t"))
        if low:
            conditions.append(column >= bindparam("lo", type_=Float()))
        if high:
            conditions.append(column <= bindparam("hi", type_=Float()))
        order = (column.desc(), memories.c.memory_id.desc()) if reverse else (column, memories.c.memory_id)
        stmt = select(*RECORD_COLUMNS).where(*conditions).order_by(*order)
        if skip:
            stmt = stmt.offset(bindparam("off"))
        if limited:
            stmt = stmt.limit(bindparam("lim"))
        sql = stmt.compile(dialect=self.engine.dialect).string if self._dialect == "postgresql" else None
        self._range_statements[(by, typed, low, high, reverse, skip, limited)] = (stmt, sql)
        return stmt, sql

    def text_pending(self, agent_id: str, most: int | None = None, among: Sequence[str] | None = None) -> list[str]:
        """Memories of the agent that wait for their text vector: the first ``most`` by step, or
        those ``among`` the ids given."""
        def run() -> list[str]:
            with self._reads.connect() as conn:
                if among is not None:
                    return [m for where, _ in self._keyed(conn, agent_id, among) for m in conn.execute(
                        select(memories.c.memory_id).where(where, WAITING)).scalars()]
                # SQLite's planner, without statistics, would walk the agent's rows by primary key
                stmt = (select(memories.c.memory_id).where(self._mine(agent_id), WAITING)
                        .order_by(memories.c.step).limit(most)
                        .with_hint(memories, "INDEXED BY tiermem_ltm_text_pending", dialect_name="sqlite"))
                return list(conn.execute(stmt).scalars())

        return self._guard(run)

    def held(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """The ids among ``memory_ids`` this tier holds."""

        def run() -> set[str]:
            with self._reads.connect() as conn:
                return {memory_id for _, located in self._keyed(conn, agent_id, memory_ids) for _, memory_id in located}

        return self._guard(run)

    def reads_since_arrival(self, agent_id: str, memory_ids: Sequence[str]) -> dict[str, int]:
        """Flushed reads of each memory since it last moved into LTM (promotion decisions)."""

        def run() -> dict[str, int]:
            out: dict[str, int] = {}
            with self._reads.connect() as conn:
                for where, _ in self._keyed(conn, agent_id, memory_ids):
                    rows = conn.execute(select(memories.c.memory_id, memories.c.reads_in_ltm).where(where))
                    out.update({memory_id: int(n) for memory_id, n in rows})
            return out

        return self._guard(run)

    def count(self, agent_id: str) -> int:
        def run() -> int:
            with self._reads.connect() as conn:
                return int(conn.execute(select(func.count()).where(self._mine(agent_id))).scalar() or 0)

        return self._guard(run)

    def stats(self, agent_id: str | None) -> dict[str, Any]:
        """Count, stored and raw payload bytes, type distribution and importance summary."""
        where = [memories.c.namespace == self.namespace]
        if agent_id is not None:
            where.append(memories.c.agent_id == agent_id)

        def run() -> dict[str, Any]:
            with self._reads.connect() as conn:
                count, stored, raw, lo, hi, total = conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(func.length(memories.c.payload)), 0),
                        func.coalesce(func.sum(memories.c.raw_size), 0),
                        func.min(memories.c.importance),
                        func.max(memories.c.importance),
                        func.coalesce(func.sum(memories.c.importance), 0.0),
                    ).where(*where)
                ).one()
                types: dict[str, int] = dict(
                    conn.execute(
                        select(memories.c.memory_type, func.count()).where(*where).group_by(memories.c.memory_type)
                    ).all()
                )
            return {
                "count": int(count),
                "payload_bytes": int(stored),
                "raw_bytes": int(raw),
                "types": {k: int(v) for k, v in types.items()},
                "importance_min": lo,
                "importance_max": hi,
                "importance_sum": float(total),
            }

        return self._guard(run)

    def latest_stamp(self, agent_id: str) -> int:
        """The highest change stamp the agent's rows and deletions carry (0: none)."""
        def run() -> int:
            with self._reads.connect() as conn:
                written = conn.execute(select(func.max(memories.c.changed)).where(self._mine(agent_id))).scalar()
                deleted = conn.execute(select(func.max(gone.c.changed)).where(
                    gone.c.namespace == self.namespace, gone.c.agent_id == agent_id)).scalar()
            return max(int(written or 0), int(deleted or 0))

        return self._guard(run)

    def step_bounds(self, agent_id: str) -> tuple[int, int] | None:
        def run() -> tuple[int, int] | None:
            with self._reads.connect() as conn:
                lo, hi = conn.execute(
                    select(func.min(memories.c.step), func.max(memories.c.step)).where(self._mine(agent_id))
                ).one()
            return None if lo is None else (int(lo), int(hi))

        return self._guard(run)

    def agents(self) -> list[str]:
        def run() -> list[str]:
            with self._reads.connect() as conn:
                return [row[0] for row in conn.execute(
                    select(memories.c.agent_id).where(memories.c.namespace == self.namespace).distinct()
                )]

        return self._guard(run)

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()

    # -- plumbing -----------------------------------------------------------------------------
    def _layout(self) -> int:
        with self.engine.connect() as conn:
            return ltm_partitions(conn)

    def _mine(self, agent_id: str) -> Any:
        return and_(memories.c.namespace == self.namespace, memories.c.agent_id == agent_id)

    def _select_by_key(self, conn: Any, agent_id: str, steps: Sequence[int], memory_ids: Sequence[str]) -> list[Any]:
        """Rows by (step, id), through the driver: the search path reads a few rows per query,
        and SQLAlchemy's per-statement work would cost more than SQLite's. The rows of those
        steps are read by primary-key prefix (one probe per step) and the ids picked here.
        Statements are compiled once per size (rounded up to a power of two, the last repeated)."""
        wanted = set(memory_ids)
        steps = _padded(sorted(set(steps)))
        sql, order = self._keyed_sql(len(steps))
        params = {"ns": self.namespace, "ag": agent_id, **{f"s{i}": v for i, v in enumerate(steps)}}
        rows = conn.exec_driver_sql(sql, tuple(params[name] for name in order) if order else params)
        return [row for row in rows.all() if row[0] in wanted]

    def _keyed_sql(self, n_steps: int) -> tuple[str, Any]:
        cached = self._keyed_statements.get(n_steps)
        if cached is None:
            stmt = select(*RECORD_COLUMNS).where(
                memories.c.namespace == bindparam("ns"), memories.c.agent_id == bindparam("ag"),
                memories.c.step.in_([bindparam(f"s{i}") for i in range(n_steps)]),
            )
            compiled = stmt.compile(dialect=self.engine.dialect)
            cached = self._keyed_statements[n_steps] = (compiled.string, compiled.positiontup)
        return cached

    def _keyed(self, conn: Any, agent_id: str, memory_ids: Sequence[str]) -> Iterator[tuple[Any, list[Any]]]:
        """WHERE clauses (with the (step, id) pairs they cover) that reach rows by id through their full
        primary key. Asked by memory_id alone, SQLite without statistics prefers scanning the
        agent's primary-key range over the id index (milliseconds per lookup); so the steps are
        read first from the covering id index, then rows are fetched by (step, id)."""
        for chunk in _chunks(list(dict.fromkeys(memory_ids)), 500):
            located = conn.execute(select(memories.c.step, memories.c.memory_id).where(
                self._mine(agent_id), memories.c.memory_id.in_(chunk))).all()
            if located:
                steps = sorted({step for step, _ in located})
                ids = [memory_id for _, memory_id in located]
                yield and_(self._mine(agent_id), memories.c.step.in_(steps), memories.c.memory_id.in_(ids)), located

    def _decode(self, row: Any) -> MemoryRecord:
        """A record from a row of RECORD_COLUMNS (unpacked by position: named access is slow)."""
        (memory_id, agent_id, step, memory_type, timestamp, importance, retrieval_count,
         last_access_time, last_access_step, dict_id, payload, vectors) = row
        embeddings, position = _unpack_derived(vectors)
        return MemoryRecord(
            memory_id=memory_id,
            agent_id=agent_id,
            step_number=step,
            memory_type=memory_type,
            timestamp=timestamp,
            importance_score=importance,
            contents_blob=self.codec.decompress(dict_id, payload),  # type: ignore[union-attr]
            embeddings=embeddings,
            retrieval_count=retrieval_count,
            last_access_time=last_access_time,
            last_access_step=last_access_step,
            tier="ltm",
            compression_level=2,
            position=position,
        )

    def _guard(self, run: Any) -> Any:
        return guarded(run)


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
