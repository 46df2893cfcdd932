"""The LTM schema: several processes opening one new SQLite file at once all succeed (each sees
no table, one CREATE fails, the others try again), and an older file is migrated."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import sqlalchemy

from tiers.ltm import SQLTier
from tiers.ltm_schema import SCHEMA_VERSION, make_engine


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


def test_a_version_2_postgresql_database_takes_content_ids(private_postgres_engine: sqlalchemy.engine.Engine) -> None:
    """PostgreSQL's INTEGER holds 31 bits: a database from before content-named dictionaries gets
    a BIGINT dict_id, and a row compressed with a content-named dictionary (a 63-bit id) is stored
    and read back."""
    import random

    import zstandard

    from tiers.codec import PayloadCodec, pack_contents
    from tiers.dictionaries import CONTENT_IDS, dictionary_id
    from tiers.record import MemoryRecord

    pg = private_postgres_engine
    SQLTier(pg, "old").close()
    with pg.begin() as conn:
        conn.execute(sqlalchemy.text("ALTER TABLE tiermem_ltm ALTER COLUMN dict_id TYPE INTEGER"))
        conn.execute(sqlalchemy.text("ALTER TABLE tiermem_ltm DROP COLUMN text_pending"))  # added by version 4
        conn.execute(sqlalchemy.text("UPDATE tiermem_schema SET version = 2"))
    ltm = SQLTier(pg, "old")
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
