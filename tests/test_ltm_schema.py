"""The LTM schema: several processes opening one new SQLite file or PostgreSQL schema at once all
succeed (each sees no table, one CREATE fails, the others try again), and an older database is
migrated. On PostgreSQL a new LTM is hash-partitioned by agent, a range reads one partition by
its primary key (EXPLAIN), and a table made unpartitioned is kept as it is."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from support import TEST_POSTGRES_URL, postgres_schema
from tiers.codec import PayloadCodec, pack_contents
from tiers.ltm import SQLTier
from tiers.ltm_schema import SCHEMA_VERSION, make_engine, metadata, schema_version
from tiers.record import MemoryRecord


def _open(path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()
    SQLTier(make_engine(None, path), "race").close()


def test_concurrent_first_opening_of_one_sqlite_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for trial in range(4):
        path = str(tmp_path / f"ltm-{trial}.sqlite")
        barrier = context.Barrier(6)
        processes = [context.Process(target=_open, args=(path, barrier)) for _ in range(6)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert [p.exitcode for p in processes] == [0] * 6


def test_a_version_1_database_is_migrated(tmp_path: Path) -> None:
    """A file from before the change stamps gets the column, its index and the current version."""
    import sqlite3

    path = str(tmp_path / "old.sqlite")
    SQLTier(make_engine(None, path), "old").close()
    db = sqlite3.connect(path)
    for column in ("changed", "text_pending"):  # the columns later versions added
        db.execute(f"DROP INDEX tiermem_ltm_{column}")
        db.execute(f"ALTER TABLE tiermem_ltm DROP COLUMN {column}")
    db.execute("UPDATE tiermem_schema SET version = 1")
    db.commit()
    SQLTier(make_engine(None, path), "old").close()
    columns = [row[1] for row in db.execute("PRAGMA table_info(tiermem_ltm)")]
    assert "changed" in columns and "text_pending" in columns
    assert db.execute("SELECT version FROM tiermem_schema").fetchall() == [(SCHEMA_VERSION,)]
    assert len(db.execute("SELECT name FROM sqlite_master WHERE name IN "
                          "('tiermem_ltm_changed', 'tiermem_ltm_text_pending')").fetchall()) == 2


@pytest.mark.parametrize("partitions", [1, 4], ids=["one-table", "partitioned"])
def test_a_version_2_postgresql_database_takes_content_ids(private_postgres_engine: sqlalchemy.engine.Engine,
                                                           partitions: int) -> None:
    """PostgreSQL's INTEGER holds 31 bits: a database from before content-named dictionaries gets
    a BIGINT dict_id, and a row compressed with a content-named dictionary (a 63-bit id) is stored
    and read back. Databases of that version are one plain table; the migrations run on a
    partitioned one too."""
    import random

    import zstandard

    from tiers.codec import PayloadCodec, pack_contents
    from tiers.dictionaries import CONTENT_IDS, dictionary_id
    from tiers.record import MemoryRecord

    pg = private_postgres_engine
    SQLTier(pg, "old", partitions=partitions).close()
    with pg.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE tiermem_ltm ALTER COLUMN dict_id TYPE INTEGER"))
        conn.execute(sqlalchemy.text("ALTER TABLE tiermem_ltm DROP COLUMN text_pending"))  # added by version 4
        conn.execute(sqlalchemy.text("UPDATE tiermem_schema SET version = 2"))
    ltm = SQLTier(pg, "old")
    assert ltm.partitions == partitions
    with pg.begin() as conn:
        kind = conn.execute(sqlalchemy.text(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'tiermem_ltm' "
            "AND column_name = 'dict_id' AND table_schema = current_schema()")).scalar()
        version = conn.execute(sqlalchemy.text("SELECT version FROM tiermem_schema")).scalar()
    assert (kind, version) == ("bigint", SCHEMA_VERSION)
    rng = random.Random(3)
    samples = [pack_contents({"x": rng.random(), "n": f"name-{i}", "hp": rng.randint(0, 99)}) for i in range(300)]
    data = zstandard.train_dictionary(4096, samples).as_bytes()
    dict_id = dictionary_id(data)
    ltm.codec = PayloadCodec(load_dictionary={dict_id: data}.get, save_dictionary=lambda _: dict_id,
                             latest_dictionary=lambda: (dict_id, data))
    record = MemoryRecord("m1", "a", 1, "state", 1.0, 0.5, samples[0])
    ltm.put_many("a", [record])
    (back,) = ltm.get_many("a", ["m1"])
    assert back.contents == record.contents and dict_id >= CONTENT_IDS
    with pg.begin() as conn:
        assert conn.execute(sqlalchemy.text("SELECT dict_id FROM tiermem_ltm WHERE namespace = 'old'")).scalar() == dict_id
        conn.execute(sqlalchemy.text("DELETE FROM tiermem_ltm WHERE namespace = 'old'"))
    ltm.close()


# -- PostgreSQL's layout: hash partitions by agent, or one plain table -----------------------------


def _tier(engine: sqlalchemy.engine.Engine, namespace: str = "lay", **options: Any) -> SQLTier:
    ltm = SQLTier(engine, namespace, **options)
    ltm.codec = PayloadCodec()  # no dictionary: plain zstd
    return ltm


def _records(agent: str, steps: range) -> list[MemoryRecord]:
    return [MemoryRecord(f"{agent}-{step:08d}", agent, step, "state", 1.0, 0.5,
                         pack_contents({"agent": agent, "step": step, "note": "the quick brown fox"})) for step in steps]


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, relation) of every node of an EXPLAIN (FORMAT JSON) plan that reads a relation."""
    found = [(plan["Node Type"], plan["Relation Name"])] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def test_a_new_postgresql_ltm_is_hash_partitioned_by_agent(private_postgres_engine: sqlalchemy.engine.Engine) -> None:
    pg = private_postgres_engine
    ltm = _tier(pg, partitions=4)
    assert ltm.partitions == 4
    agents = [f"agent-{i}" for i in range(12)]
    for agent in agents:
        ltm.put_many(agent, _records(agent, range(20)))
    with pg.connect() as conn:
        strategy = conn.execute(sqlalchemy.text(
            "SELECT p.partstrat, a.attname FROM pg_partitioned_table p JOIN pg_attribute a "
            "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
            "WHERE p.partrelid = 'tiermem_ltm'::regclass")).one()
        homes = conn.execute(sqlalchemy.text(
            "SELECT agent_id, array_agg(DISTINCT tableoid::regclass::text) FROM tiermem_ltm GROUP BY agent_id")).all()
    assert tuple(strategy) == ("h", "agent_id")
    assert sorted(agent for agent, _ in homes) == sorted(agents)
    assert all(len(tables) == 1 and tables[0].startswith("tiermem_ltm_p") for _, tables in homes), homes
    assert len({tables[0] for _, tables in homes}) > 1  # the agents spread over the partitions
    assert [r.step_number for r in ltm.range("agent-3", lo=5, hi=9)] == [5, 6, 7, 8, 9]
    ltm.close()


def test_a_range_reads_one_partition_by_its_primary_key(private_postgres_engine: sqlalchemy.engine.Engine) -> None:
    """The tier's own range statement, as PostgreSQL plans it once it has statistics: for the
    values of one call (a custom plan) and as the generic plan of a prepared statement (what an
    engine's sessions keep: tiers/ltm_schema.py), an index scan of the agent's partition by its
    primary key, never a sequential scan and never another partition."""
    pg = private_postgres_engine
    ltm = _tier(pg, partitions=4)
    for agent in (f"agent-{i}" for i in range(40)):
        ltm.put_many(agent, _records(agent, range(500)))
    _, sql = ltm._range_statement("step", False, True, True, False, False, True)
    params = {"ns": "lay", "ag": "agent-7", "lo": 100, "hi": 199, "lim": 100}
    with pg.connect() as conn:
        conn.execute(sqlalchemy.text("ANALYZE tiermem_ltm"))
        home = conn.execute(sqlalchemy.text(
            "SELECT DISTINCT tableoid::regclass::text FROM tiermem_ltm WHERE agent_id = 'agent-7'")).scalar_one()
        driver = conn.connection.driver_connection
        custom = driver.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0][0]["Plan"]
        driver.execute("SET plan_cache_mode = force_generic_plan")
        driver.execute("PREPARE ranged AS " + sql.replace("%(ns)s", "$1").replace("%(ag)s", "$2")
                       .replace("%(lo)s", "$3").replace("%(hi)s", "$4").replace("%(lim)s", "$5"))
        generic = driver.execute("EXPLAIN (FORMAT JSON) EXECUTE ranged('lay', 'agent-7', 100, 199, 100)").fetchone()[0][0]
        conn.rollback()
    for plan in (custom, generic["Plan"]):
        assert _scans(plan) == [("Index Scan", home)], plan
        assert _index_names(plan) == [f"{home}_pkey"], plan
    assert _removed(generic["Plan"]) == 3, generic  # pruned as it starts: one partition of 4
    assert [r.step_number for r in ltm.range("agent-7", lo=100, hi=199, limit=100)] == list(range(100, 200))
    ltm.close()


def _removed(plan: dict[str, Any]) -> int:
    """Partitions a plan's nodes leave out when the statement starts (run-time pruning)."""
    return plan.get("Subplans Removed", 0) + sum(_removed(child) for child in plan.get("Plans", []))


def _index_names(plan: dict[str, Any]) -> list[str]:
    names = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        names += _index_names(child)
    return names


def test_an_ltm_table_made_unpartitioned_keeps_its_layout(private_postgres_engine: sqlalchemy.engine.Engine) -> None:
    """A PostgreSQL LTM that is one plain table (made by a schema version that did not partition,
    or with partitions=1) is opened as it is, whatever ``partitions`` asks: its rows are read,
    new rows and re-puts are written, and it is still one table."""
    pg = private_postgres_engine
    with pg.begin() as conn:  # the tables as a schema without partitions makes them
        metadata.create_all(conn)
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    old = _tier(pg, "old", partitions=1)
    assert old.partitions == 1
    old.put_many("a", _records("a", range(10)))
    old.close()
    ltm = _tier(pg, "old")  # the default: partitions=16
    assert ltm.partitions == 1
    ltm.put_many("a", _records("a", range(5, 15)))  # five are there already: upserted
    ltm.put_many("b", _records("b", range(3)))
    assert [r.step_number for r in ltm.range("a")] == list(range(15))
    assert [r.contents["step"] for r in ltm.range("b")] == [0, 1, 2]
    with pg.connect() as conn:
        kind = conn.execute(sqlalchemy.text("SELECT relkind FROM pg_class WHERE oid = 'tiermem_ltm'::regclass")).scalar()
        parts = conn.execute(sqlalchemy.text(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tiermem_ltm'::regclass")).scalar()
    assert (kind, parts) == ("r", 0)
    ltm.close()


def _open_postgres(url: str, schema: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    engine = sqlalchemy.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    barrier.wait()
    ltm = SQLTier(engine, "race", partitions=8)
    assert ltm.partitions == 8
    ltm.close()
    engine.dispose()


def test_concurrent_first_opening_of_one_postgresql_schema() -> None:
    """Six processes creating the partitioned table (its partitions and indices) at once all succeed."""
    context = multiprocessing.get_context("fork")
    for _ in range(2):
        with postgres_schema() as engine:
            with engine.connect() as conn:
                schema = conn.execute(sqlalchemy.text("SELECT current_schema()")).scalar()
            barrier = context.Barrier(6)
            processes = [context.Process(target=_open_postgres, args=(TEST_POSTGRES_URL, schema, barrier))
                         for _ in range(6)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=120)
            assert [p.exitcode for p in processes] == [0] * 6
            with engine.connect() as conn:
                assert conn.execute(sqlalchemy.text(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tiermem_ltm'::regclass")).scalar() == 8
