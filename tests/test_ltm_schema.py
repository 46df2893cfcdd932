"""The LTM schema: several processes opening one new SQLite file at once all succeed (each sees
no table, one CREATE fails, the others try again), and an older file is migrated."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from tiers.ltm import SQLTier, make_engine


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
    """A file from before the change stamps gets the column, its index and version 2."""
    import sqlite3

    path = str(tmp_path / "old.sqlite")
    SQLTier(make_engine(None, path), "old").close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX tiermem_ltm_changed")
    db.execute("ALTER TABLE tiermem_ltm DROP COLUMN changed")
    db.execute("UPDATE tiermem_schema SET version = 1")
    db.commit()
    SQLTier(make_engine(None, path), "old").close()
    assert "changed" in [row[1] for row in db.execute("PRAGMA table_info(tiermem_ltm)")]
    assert db.execute("SELECT version FROM tiermem_schema").fetchall() == [(2,)]
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'tiermem_ltm_changed'").fetchall()
