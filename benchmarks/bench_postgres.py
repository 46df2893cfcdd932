"""tiermem LTM benchmark: SQLite and PostgreSQL side by side, then PostgreSQL's range by table size.

Run from the repository root (a Redis at --redis-url, a PostgreSQL at --postgres-url):

    .venv/bin/python benchmarks/bench_postgres.py --quick              # ~15 s: 40,000 rows side by side, sizes 10^5
    .venv/bin/python benchmarks/bench_postgres.py                      # ~3 min: 500,000 rows side by side, sizes to 10^6
    .venv/bin/python benchmarks/bench_postgres.py --largest 10000000   # the sizes to 10^7 rows: ~8 min, ~7 GB of disk

A standalone script, not a test. One run, in this order:

 1. side by side  the workload of bench_engine.py (one ~15-field state per agent and step, no
                  state vectors) for --agents x --steps, stored and maintained into LTM on two
                  deployments at once: one with a SQLite file, one with a PostgreSQL schema.
                  Agents go in groups of --group: store_many of the group's history, a
                  maintenance that moves it STM -> IM, then a timed one (an engine with IM limit
                  --tail on the same prefix and LTM) that moves it IM -> LTM. The two
                  deployments take turns per group, so both see the same moments of this machine.
 2. reads         100-step windows inside the agents' LTM history, the same windows on both,
                  alternating: retrieve_by_time_range (result cache cleared before every call)
                  and the LTM tier's own range (SQLTier.range).
 3. sizes         bytes per LTM row on disk: PostgreSQL's pg_total_relation_size over the table
                  (its partitions, indices and TOAST) / rows; SQLite's file (after a WAL
                  checkpoint) / rows.
 4. range by n    one PostgreSQL table per size, 10^5, 10^6, ... up to --largest rows, each in a
                  schema of its own, created by the engine's own schema code (SQLTier, hash
                  partitions as configured) and bulk-loaded through SQLTier.put_many (one COPY
                  per 5,000 rows; agents of --size-steps steps; real payloads, compressed once
                  with a dictionary trained on the same states), then VACUUM ANALYZE and
                  CHECKPOINT (what autovacuum and the checkpointer do before a table serves for
                  long). Then the LTM tier's 100-row range on every size in turns, and the plan
                  PostgreSQL runs it with (EXPLAIN ANALYZE of the prepared statement).
 5. partitions    the same at 100,000 rows, one table per --partition-counts entry (1: one
                  plain table): what a prepared range costs with more partitions to prune.

PostgreSQL gets ANALYZE after loading (what autovacuum does; the server here may run without
it). Nothing is flushed: Redis keys live under a unique prefix (--prefix-<pid>-<hex>) deleted by
SCAN at the end; the PostgreSQL schemas (tiermem_pg_bench_<hex>) are dropped at the end; the
SQLite file lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg.sql
import redis
import sqlalchemy
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_engine import SimAgent, agent_name, delete_prefix, machine_info, percentiles_ms, progress  # noqa: E402
from memory import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402
from tiers.codec import PayloadCodec, pack_contents  # noqa: E402
from tiers.dictionaries import dictionary_id  # noqa: E402
from tiers.ltm import SQLTier  # noqa: E402
from tiers.ltm_schema import DEFAULT_PARTITIONS, make_engine  # noqa: E402
from tiers.record import MemoryRecord  # noqa: E402

WINDOW = 100  # rows per range query
BATCH = 1000  # states per store_many call
LOAD_BATCH = 5000  # rows per put_many (one COPY) when loading the sizes table
POOL = 4096  # distinct compressed states the sizes table's rows cycle through
PARTITIONS_ROWS = 100_000  # rows of each table of the partition-count comparison


# -- the deployments ------------------------------------------------------------------------------
@dataclass
class Side:
    """One deployment: its name, the engine that fills IM and the one that settles IM into LTM."""

    name: str
    fill: AgentMemoryAPI
    settle: AgentMemoryAPI
    moves: int = 0
    move_seconds: float = 0.0
    range_ns: list[int] = field(default_factory=list)
    tier_range_ns: list[int] = field(default_factory=list)

    def close(self) -> None:
        self.fill.close()
        self.settle.close()


def config(args: argparse.Namespace, prefix: str, data_dir: str, im_limit: int, ltm: dict[str, Any]) -> MemoryConfig:
    return MemoryConfig(
        redis_url=args.redis_url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=2**53,
        stm_config={"memory_limit": args.tail}, im_config={"memory_limit": im_limit}, ltm_config=ltm,
        search_config={"state_vectors": False, "text_embedding": "off"},
    )


def open_side(args: argparse.Namespace, name: str, prefix: str, data_dir: str, ltm: dict[str, Any]) -> Side:
    fill = AgentMemoryAPI(config(args, prefix, data_dir, args.steps + 1, ltm))
    settle = AgentMemoryAPI(config(args, prefix, data_dir, args.tail, ltm))
    return Side(name, fill, settle)


def schema_url(url: str, schema: str) -> str:
    """``url`` with every connection's search_path set to ``schema``."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


# -- 1. load and maintain ------------------------------------------------------------------------------
def load_group(args: argparse.Namespace, side: Side, sims: list[SimAgent]) -> None:
    """The group's whole history into STM, moved to IM, then (timed) to LTM."""
    steps_per_batch = max(1, BATCH // len(sims))
    for first in range(0, args.steps, steps_per_batch):
        side.fill.store_many([
            {"agent_id": sim.agent_id, "data": sim.state(step), "step_number": step}
            for step in range(first, min(first + steps_per_batch, args.steps)) for sim in sims
        ])
    side.fill.force_memory_maintenance()
    report = side.settle.force_memory_maintenance()
    side.moves += report.im_to_ltm
    side.move_seconds += report.seconds


def load(args: argparse.Namespace, sides: list[Side]) -> None:
    for group, first in enumerate(range(0, args.agents, args.group)):
        indices = range(first, min(first + args.group, args.agents))
        order = sides if group % 2 == 0 else sides[::-1]
        for side in order:
            load_group(args, side, [SimAgent(i, args.seed) for i in indices])  # the same states on both
        progress(f"  agents {first:,}..{indices[-1]:,} of {args.agents:,}: "
                 + ", ".join(f"{s.name} {s.moves / s.move_seconds:,.0f} moves/s" for s in sides))


# -- 2. reads --------------------------------------------------------------------------------------------
def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, Any]:
    started = time.perf_counter_ns()
    answer = call(*args, **kwargs)
    return time.perf_counter_ns() - started, answer


def check(rows: Sequence[Any], start: int, what: str) -> None:
    steps = [row["step_number"] if isinstance(row, dict) else row.step_number for row in rows]
    if steps != list(range(start, start + WINDOW)):
        raise AssertionError(f"{what} window {start}: got {len(steps)} rows, not steps {start}..{start + WINDOW - 1}")


def measure_reads(args: argparse.Namespace, sides: list[Side]) -> None:
    """The same windows on every side, in alternating order; each window is in LTM on both."""
    rng = random.Random(args.seed)
    last_ltm_step = args.steps - 2 * args.tail - 1  # the tail stays in STM and IM
    for i in range(args.queries):
        agent, start = agent_name(rng.randrange(args.agents)), rng.randrange(0, last_ltm_step - WINDOW + 2)
        for side in sides if i % 2 == 0 else sides[::-1]:
            api = side.settle
            api.clear_cache()
            elapsed, rows = timed(api.retrieve_by_time_range, agent, start, start + WINDOW - 1)
            check(rows, start, f"{side.name} retrieve_by_time_range {agent}")
            side.range_ns.append(elapsed)
            ltm = api._tiers.ltm  # noqa: SLF001 - the LTM tier's own range, below the engine
            elapsed, rows = timed(ltm.range, agent, lo=start, hi=start + WINDOW - 1)
            check(rows, start, f"{side.name} SQLTier.range {agent}")
            side.tier_range_ns.append(elapsed)


# -- 3. sizes ----------------------------------------------------------------------------------------------
def sqlite_bytes_per_row(path: str, namespace: str) -> tuple[int, float]:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (rows,) = conn.execute("SELECT COUNT(*) FROM tiermem_ltm WHERE namespace = ?", (namespace,)).fetchone()
    conn.close()
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return rows, size / max(rows, 1)


# (all, table with its TOAST, indices) of tiermem_ltm: a partitioned table's own size is 0, its
# partitions hold the rows (pg_partition_tree lists nothing for a plain table)
SIZES = ("SELECT SUM(pg_total_relation_size(relid)), SUM(pg_table_size(relid)), SUM(pg_indexes_size(relid)) "
         "FROM (SELECT relid FROM pg_partition_tree('tiermem_ltm') UNION SELECT 'tiermem_ltm'::regclass) AS tree")


def postgres_bytes_per_row(engine: sqlalchemy.engine.Engine) -> tuple[int, float, float, float]:
    """Rows, then bytes per row: all of the table, its heap and TOAST, its indices."""
    with engine.connect() as conn:
        rows = int(conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM tiermem_ltm")).scalar() or 0)
        total, table, indices = (int(v or 0) for v in conn.execute(sqlalchemy.text(SIZES)).one())
    per = max(rows, 1)
    return rows, total / per, table / per, indices / per


def analyze(engine: sqlalchemy.engine.Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sqlalchemy.text("ANALYZE tiermem_ltm"))


# -- the run ---------------------------------------------------------------------------------------------
def side_by_side(args: argparse.Namespace, root: str, tmp: str, pg_url: str) -> list[str]:
    progress(f"1/5 {args.agents:,} agents x {args.steps:,} steps into SQLite and PostgreSQL, groups of {args.group}")
    sqlite_path = f"{tmp}/sqlite/ltm.sqlite"
    sides = [open_side(args, "SQLite", f"{root}.sqlite", f"{tmp}/sqlite", {"db_path": sqlite_path})]
    try:
        sides.append(open_side(args, "PostgreSQL", f"{root}.pg", f"{tmp}/pg", {"url": pg_url}))
        load(args, sides)
        pg_engine = sqlalchemy.create_engine(pg_url)
        analyze(pg_engine)
        progress(f"2/5 {args.queries:,} windows of {WINDOW} rows, the same on both")
        measure_reads(args, sides)
        progress("3/5 bytes per row")
        pg_rows, pg_total, pg_table, pg_indices = postgres_bytes_per_row(pg_engine)
        sizes = [sqlite_bytes_per_row(sqlite_path, f"{root}.sqlite"), (pg_rows, pg_total)]
        pg_engine.dispose()
    finally:
        for side in sides:
            side.close()
    table = side_by_side_table(sides, sizes)
    table.append(f"(PostgreSQL bytes per row: {pg_table:,.0f} the table with its TOAST, {pg_indices:,.0f} its indices)")
    return table


def side_by_side_table(sides: list[Side], sizes: list[tuple[int, float]]) -> list[str]:
    lite, pg = sides
    rows: list[tuple[str, str, str, str]] = []
    for label, attr in (("retrieve_by_time_range, 100 rows from LTM", "range_ns"),
                        ("SQLTier.range, 100 rows", "tier_range_ns")):
        a, b = percentiles_ms(getattr(lite, attr)), percentiles_ms(getattr(pg, attr))
        for p in ("p50", "p90", "p99"):
            rows.append((f"{label}: {p} (ms)", f"{a[p]:.3f}", f"{b[p]:.3f}", f"{b[p] / a[p]:.2f}"))
    rate = [side.moves / side.move_seconds for side in sides]
    rows.append(("maintenance IM -> LTM (moves/s)", f"{rate[0]:,.0f}", f"{rate[1]:,.0f}", f"{rate[1] / rate[0]:.2f}"))
    rows.append(("LTM bytes per row on disk", f"{sizes[0][1]:,.0f}", f"{sizes[1][1]:,.0f}",
                 f"{sizes[1][1] / sizes[0][1]:.2f}"))
    rows.append(("LTM rows", f"{sizes[0][0]:,}", f"{sizes[1][0]:,}", ""))
    width = max(len(r[0]) for r in rows)
    out = [f"{'':<{width}}  {'SQLite':>10} {'PostgreSQL':>11} {'PG/SQLite':>10}"]
    out += [f"{name:<{width}}  {a:>10} {b:>11} {ratio:>10}" for name, a, b, ratio in rows]
    out.append(f"(moves: SQLite {lite.moves:,} in {lite.move_seconds:.1f} s, PostgreSQL {pg.moves:,} in "
               f"{pg.move_seconds:.1f} s; {len(lite.range_ns):,} windows each)")
    return out


# -- 4. the range by table size ----------------------------------------------------------------------------
@dataclass
class SizeRow:
    rows: int
    partitions: int
    agents: int
    load_seconds: float
    range_ns: list[int]
    bytes_per_row: float
    plan: str


def payload_pool(args: argparse.Namespace) -> tuple[PayloadCodec, list[tuple[bytes, tuple[int, bytes]]]]:
    """A codec with a dictionary trained on bench_engine.py's states, and POOL (contents, payload)
    pairs compressed with it: rows carry real payloads without compressing each one again."""
    sim = SimAgent(0, args.seed, name="pool")
    blobs = [pack_contents(sim.state(step)) for step in range(POOL)]
    data = zstandard.train_dictionary(32768, blobs[:2000]).as_bytes()
    dict_id = dictionary_id(data)
    codec = PayloadCodec(load_dictionary={dict_id: data}.get, save_dictionary=lambda _: dict_id,
                         latest_dictionary=lambda: (dict_id, data))
    return codec, [(blob, codec.compress(blob)) for blob in blobs]


def load_agent(ltm: SQLTier, agent: str, steps: int, pool: list[tuple[bytes, tuple[int, bytes]]], serial: int) -> None:
    """One agent's whole history, in step order, LOAD_BATCH rows per put_many."""
    for first in range(0, steps, LOAD_BATCH):
        records = []
        for step in range(first, min(first + LOAD_BATCH, steps)):
            blob, stored = pool[(serial + step) % POOL]
            records.append(MemoryRecord(f"{agent}-{serial:016x}{step:06x}-{step}", agent, step, "state",
                                        1.7e9 + step, 0.5, blob, tier="ltm", stored_payload=stored))
        ltm.put_many(agent, records, changed=1)


def explain(engine: sqlalchemy.engine.Engine, ltm: SQLTier, agent: str, start: int) -> str:
    """How PostgreSQL runs the tier's range statement, prepared (its generic plan: the engine's
    sessions keep it): the nodes that read, the partitions left out and the buffers touched."""
    _, sql = ltm._range_statement("step", False, True, True, False, False, False)  # noqa: SLF001
    params = {"ns": ltm.namespace, "ag": agent, "lo": start, "hi": start + WINDOW - 1}
    named = sql.replace("%(ns)s", "$1").replace("%(ag)s", "$2").replace("%(lo)s", "$3").replace("%(hi)s", "$4")
    values = psycopg.sql.SQL(", ").join(map(psycopg.sql.Literal, params.values()))
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.execute(f"PREPARE sized AS {named}")
        plan = driver.execute(psycopg.sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE sized({})").format(values)
                              ).fetchone()[0][0]["Plan"]
        driver.execute("DEALLOCATE sized")
        conn.rollback()
    nodes: list[str] = []
    removed = 0

    def walk(node: dict[str, Any]) -> None:
        nonlocal removed
        removed += node.get("Subplans Removed", 0)
        if "Relation Name" in node:
            nodes.append(f"{node['Node Type']} of {node['Relation Name']} by {node.get('Index Name', '-')}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return f"{'; '.join(nodes)}; {removed} partitions pruned; {buffers} buffers"


def measure_tables(args: argparse.Namespace, urls: list[str], shapes: list[tuple[int, int]]) -> list[SizeRow]:
    """One table per (rows, partitions) of ``shapes`` (a schema each: ``urls``), loaded, vacuumed
    and checkpointed; then the same number of windows on each, in turns, so every table sees the
    same moments."""
    codec, pool = payload_pool(args)
    engines = [make_engine(url, None, generic_plans=True) for url in urls]  # as the engine makes them
    tiers = [SQLTier(engine, "tpgsizes", partitions=partitions) for engine, (_, partitions) in zip(engines, shapes)]
    loads = []
    try:
        for (size, _), engine, ltm in zip(shapes, engines, tiers):
            ltm.codec = codec
            started = time.perf_counter()
            for index in range(size // args.size_steps):
                load_agent(ltm, f"agent-{index:06d}", args.size_steps, pool, index)
                if index % 100 == 99:
                    progress(f"  {size:,}: {(index + 1) * args.size_steps:,} rows")
            loads.append(time.perf_counter() - started)
            settle(engine)
            progress(f"  {size:,} rows in {ltm.partitions} partitions loaded in {loads[-1]:.0f} s")
        rng = random.Random(args.seed)
        samples: list[list[int]] = [[] for _ in tiers]
        for i in range(args.queries + 20):  # the first 20 of each warm the sessions and their prepared statements
            for k in range(len(tiers)) if i % 2 else reversed(range(len(tiers))):
                agent, start = f"agent-{rng.randrange(shapes[k][0] // args.size_steps):06d}", rng.randrange(
                    0, args.size_steps - WINDOW + 1)
                elapsed, rows = timed(tiers[k].range, agent, lo=start, hi=start + WINDOW - 1)
                check(rows, start, f"sizes {agent}")
                if i >= 20:
                    samples[k].append(elapsed)
        out = []
        for k, (engine, ltm) in enumerate(zip(engines, tiers)):
            rows_now, per_row, _, _ = postgres_bytes_per_row(engine)
            plan = explain(engine, ltm, "agent-000000", args.size_steps // 2)
            out.append(SizeRow(rows_now, ltm.partitions, shapes[k][0] // args.size_steps, loads[k], samples[k], per_row,
                               plan))
        return out
    finally:
        for ltm in tiers:
            ltm.close()


def settle(engine: sqlalchemy.engine.Engine) -> None:
    """What autovacuum and the checkpointer do to a loaded table before it serves for long: its
    statistics, hint bits and visibility map (VACUUM ANALYZE), its dirty pages written (CHECKPOINT,
    skipped without the privilege)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sqlalchemy.text("VACUUM (ANALYZE) tiermem_ltm"))
        try:
            conn.execute(sqlalchemy.text("CHECKPOINT"))
        except sqlalchemy.exc.DBAPIError as exc:
            progress(f"  no CHECKPOINT: {str(exc).splitlines()[0]}")


def table_lines(args: argparse.Namespace, rows: list[SizeRow], what: str) -> list[str]:
    out = [f"{'LTM rows':>12} {'parts':>5} {'agents':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'B/row':>6} "
           f"{'load s':>7}  plan"]
    for row in rows:
        p = percentiles_ms(row.range_ns)
        out.append(f"{row.rows:>12,} {row.partitions:>5} {row.agents:>7,} {p['p50']:8.3f} {p['p90']:8.3f} {p['p99']:8.3f} "
                   f"{row.bytes_per_row:6.0f} {row.load_seconds:7.0f}  {row.plan}")
    first, last = percentiles_ms(rows[0].range_ns), percentiles_ms(rows[-1].range_ns)
    out.append(f"(p50 of the last / the first: {last['p50'] / first['p50']:.2f}; {args.queries:,} windows each, the "
               f"{what} in turns; load s: COPY through SQLTier.put_many, {LOAD_BATCH:,} rows each, then VACUUM "
               "ANALYZE and CHECKPOINT; plan: EXPLAIN ANALYZE of the prepared range, one window)")
    return out


def postgres_version(url: str) -> str:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sqlalchemy.text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="Redis to use (nothing is flushed)")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://root@127.0.0.1:5432/test",
                        help="PostgreSQL to use (schemas of the run's own, dropped at the end)")
    parser.add_argument("--prefix", default="tmbench-pg", help="Redis key prefix root (the run adds -<pid>-<hex>)")
    parser.add_argument("--agents", type=int, default=100, help="simulated agents side by side (default 100)")
    parser.add_argument("--steps", type=int, default=5000, help="steps per agent side by side (default 5,000)")
    parser.add_argument("--group", type=int, default=10, help="agents loaded and maintained per turn (default 10)")
    parser.add_argument("--tail", type=int, default=10, help="STM and IM limit after the move: rows left in Redis")
    parser.add_argument("--queries", type=int, default=1000, help="range windows per side (default 1,000)")
    parser.add_argument("--largest", type=int, default=1_000_000,
                        help="rows of the largest size in the sizes table: 10^5, 10^6, ... up to it (default 10^6; "
                             "10^7: ~8 minutes and ~7 GB of disk in all)")
    parser.add_argument("--size-steps", type=int, default=10_000, help="steps per agent in the sizes table")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS,
                        help=f"hash partitions of the sizes table (default {DEFAULT_PARTITIONS}, the engine's)")
    parser.add_argument("--partition-counts", default="1,16,64,256",
                        help="partition counts to compare at 100,000 rows (default 1,16,64,256)")
    parser.add_argument("--quick", action="store_true", help="a small run: 20 agents x 2,000 steps, sizes to 10^5")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.steps, args.queries, args.largest = 20, 2000, 300, 100_000
    if args.agents < 1 or args.steps < 2 * args.tail + 2 * WINDOW or args.group < 1:
        parser.error(f"need at least 1 agent, a group of 1 and {2 * args.tail + 2 * WINDOW} steps")
    if args.largest < 100_000 or args.size_steps < 2 * WINDOW:
        parser.error(f"--largest is at least 100,000 and --size-steps at least {2 * WINDOW}")
    args.sizes = [10**k for k in range(5, 13) if 10**k <= args.largest]
    try:
        args.partition_counts = [int(n) for n in args.partition_counts.split(",") if n.strip()]
    except ValueError:
        parser.error("--partition-counts is a comma-separated list of whole numbers")
    if not all(1 <= n <= 1024 for n in args.partition_counts) or not 1 <= args.partitions <= 1024:
        parser.error("partition counts are 1 to 1,024")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    root = f"{args.prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    # side by side; the sizes; the partition counts
    schemas = [f"tiermem_pg_bench_{secrets.token_hex(4)}" for _ in range(1 + len(args.sizes) + len(args.partition_counts))]
    admin = sqlalchemy.create_engine(args.postgres_url)
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    header = machine_info(client) + [f"postgres: {postgres_version(args.postgres_url)} on the same machine over TCP"]
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="tiermem-bench-pg-") as tmp:
            table = side_by_side(args, root, tmp, schema_url(args.postgres_url, schemas[0]))
        progress(f"4/5 the LTM tier's range on PostgreSQL at {', '.join(f'{n:,}' for n in args.sizes)} rows")
        urls = [schema_url(args.postgres_url, schema) for schema in schemas[1:]]
        sizes = measure_tables(args, urls[: len(args.sizes)], [(n, args.partitions) for n in args.sizes])
        progress(f"5/5 the same at {PARTITIONS_ROWS:,} rows in {', '.join(map(str, args.partition_counts))} partitions")
        counts = measure_tables(args, urls[len(args.sizes) :], [(PARTITIONS_ROWS, n) for n in args.partition_counts])
    finally:
        progress(f"deleted {delete_prefix(client, root):,} keys under {root}*")
        client.close()
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sqlalchemy.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
    print()
    print("tiermem LTM benchmark: SQLite and PostgreSQL")
    for line in header:
        print(line)
    print(f"workload: {args.agents:,} agents x {args.steps:,} steps (bench_engine.py's states, no state vectors), "
          f"seed {args.seed}; all but the last {args.tail} steps of each agent in LTM; {WINDOW}-row windows")
    print()
    for line in table:
        print(line)
    print()
    print(f"The LTM tier's range (SQLTier.range, {WINDOW} rows) on PostgreSQL by table size: agents of "
          f"{args.size_steps:,} steps, {args.partitions} hash partitions")
    for line in table_lines(args, sizes, "sizes"):
        print(line)
    print()
    print(f"The same range at {PARTITIONS_ROWS:,} rows by the number of hash partitions")
    for line in table_lines(args, counts, "tables"):
        print(line)
    print(f"- total run time {time.perf_counter() - started:.0f} s; 1-minute load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
