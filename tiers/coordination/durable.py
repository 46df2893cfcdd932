"""Durability for the embedded engine: working memory, staged patterns, sessions, collaboration
state and conflicts survive a restart, even a SIGKILL.

The embedded Redis (fakeredis) is snapshotted only on close and at exit. So every write to one
of those key families also writes the keys it touched, as they now are in Redis, into a SQLite
file beside the snapshot (``embedded-team.sqlite``), in one transaction: a write is either fully
there after a crash or not at all. Rows are keyed by the Redis key, so ids are SQL parameters and
never paths: no id can name a file, inside the data directory or outside it. Expiry is kept as an
absolute time, so a restart does not extend a TTL.

On the first open of a data directory in a process the file is authoritative for those families:
their keys from the older snapshot are dropped and the rows loaded (rows written under the
earlier key layout renamed first, tiers/coordination/keys.py). A lock serialises "write to
Redis, then copy to SQLite" per data directory, so concurrent threads never store a stale copy;
a write that is one script reads back what it touched in the same script call. Staged patterns
live in the process instead (tiers/coordination/local_patterns.py) and hand their rows to ``store``.
The stdlib ``sqlite3`` driver is used directly (parameterised statements): through SQLAlchemy a
one-row upsert costs ~25x more, and this sits on every durable write. Its errors become
TierUnavailableError("durable copy") here; the Redis calls are the callers' to translate.

The embedded engine runs in this process, so no reply is ever lost and no call here is sent
again (tiers/scripts.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from tiers.errors import TierUnavailableError
from tiers.scripts import Script, lua_source

FILE = "embedded-team.sqlite"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS team_keys (
    key TEXT PRIMARY KEY,      -- the Redis key
    kind TEXT NOT NULL,        -- string | hash | zset | zmember (key: zset key, newline, member)
    value BLOB NOT NULL,       -- msgpack: bytes, [[field, value]...], [[member, score]...] or score
    expires_at INTEGER NOT NULL  -- unix ms; 0 = no expiry
)
"""

# A write script wrapped so that the same call reads back what it touched (read_back.lua). One
# call, where a pipeline of reads after the write costs ~2x on the embedded engine.
_READ_BACK = lua_source("team/read_back")


def reading_back(write: str) -> str:
    """``write`` (a Lua script) followed, in the same call, by a read-back of the keys it touched."""
    return _READ_BACK.replace("-- the write --", write)


# (redis key, kind): kind is "string", "hash" or "zset" (the whole key), or "zmember:<member>"
# (one member of a growing index, so a write copies what it changed, not the whole index)
Item = tuple[str, str]


def _sql(run: Callable[[], T]) -> T:
    """Run SQLite work; TierUnavailableError("durable copy", ...) if the file failed."""
    try:
        return run()
    except sqlite3.Error as exc:
        raise TierUnavailableError("durable copy", str(exc)) from exc


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed write survives a process crash
    db.execute(_SCHEMA)
    return db


class DurableMirror:
    def __init__(self, data_dir: str | Path, server: Any, client: Any):
        self.path = Path(data_dir) / FILE
        self.client = client
        self._scripts: dict[str, Any] = {}
        self._db = _sql(lambda: _open(self.path))
        # per embedded server: the lock that serialises durable writes, and the prefixes restored
        self.lock, self._restored = server.local("durable-copy", lambda: (threading.RLock(), set()))

    def close(self) -> None:
        _sql(self._db.close)

    @contextmanager
    def writing(self, items: Sequence[Item]) -> Iterator[None]:
        """Run a Redis write, then copy ``items`` (the keys it touched) into SQLite, atomically."""
        with self.lock:
            yield
            self.copy(items)

    def copy(self, items: Sequence[Item]) -> None:
        self.run("", [], [], items)

    def run(self, write: str, keys: Sequence[Any], args: Sequence[Any], items: Sequence[Item]) -> Any:
        """Run the script ``write`` and copy ``items`` (the keys it touched) into SQLite: one Redis call."""
        script = self._script(reading_back(write))
        with self.lock:
            reply, values = script(
                keys=[*keys, *(key for key, _ in items)],
                args=[*args, *(kind for _, kind in items), len(keys), len(args)],
            )
            self.store(items, values)
        return reply

    def _script(self, source: str) -> Any:
        """A registered script, kept by its own source (a write and its read-back wrapper differ)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = Script(self.client, source)
        return script

    def store(self, items: Sequence[Item], replies: Sequence[Any]) -> None:
        """Copy ``items`` into SQLite in one transaction, given their values and PTTLs as a
        read-back would find them (None and -2: gone). Callers hold ``lock``."""
        now = int(time.time() * 1000)
        upserts, deletes = [], []
        for index, (key, kind) in enumerate(items):
            value, pttl = replies[2 * index], replies[2 * index + 1]
            if kind.startswith("zmember:"):
                key, kind = f"{key}\n{kind[len('zmember:') :]}", "zmember"
            if pttl == -2 or value is None or (kind in ("hash", "zset") and not value):
                deletes.append((key,))
                continue
            if kind == "hash":
                value = [list(pair) for pair in zip(value[::2], value[1::2])]
            elif kind == "zset":
                value = [[member, float(score)] for member, score in zip(value[::2], value[1::2])]
            elif kind == "zmember":
                value = float(value)
            expires = now + pttl if pttl > 0 else 0
            upserts.append((key, kind, msgpack.packb(value, use_bin_type=True), expires))
        _sql(lambda: self._write(deletes, upserts))

    def _write(self, deletes: list[tuple[str]], upserts: list[tuple[str, str, bytes, int]]) -> None:
        with self._db:  # one transaction
            self._db.execute("BEGIN IMMEDIATE")
            if deletes:
                self._db.executemany("DELETE FROM team_keys WHERE key = ?", deletes)
            if upserts:
                self._db.executemany(
                    "INSERT INTO team_keys (key, kind, value, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, value = excluded.value, "
                    "expires_at = excluded.expires_at",
                    upserts,
                )

    def restore(self, prefix_root: str, scan_patterns: Sequence[str],
                carried: tuple[Sequence[str], Callable[[str], str | None]] | None = None) -> int:
        """Once per process and prefix: make Redis hold exactly what the file holds. Returns rows
        loaded. ``carried``: (the earlier layout's key prefixes, the key each of its rows moves to
        or None to drop it), applied to the file's rows first."""
        with self.lock:
            if prefix_root in self._restored:
                return 0
            if carried is not None:
                _sql(lambda: self._carry_over(*carried))
            stale = [key for pattern in scan_patterns for key in self.client.scan_iter(match=pattern, count=1000)]
            now = int(time.time() * 1000)
            rows = _sql(lambda: self._db.execute(
                "SELECT key, kind, value, expires_at FROM team_keys WHERE key >= ? AND key < ?",
                (prefix_root, prefix_root + "\U0010ffff"),
            ).fetchall())
            pipe = self.client.pipeline(transaction=True)
            if stale:
                pipe.delete(*stale)
            loaded = 0
            for key, kind, blob, expires_at in rows:
                if expires_at and expires_at <= now:
                    continue
                value = msgpack.unpackb(blob, raw=False)
                if kind == "string":
                    pipe.set(key, value)
                elif kind == "hash":
                    pipe.hset(key, mapping=dict(value))
                elif kind == "zset":
                    pipe.zadd(key, {member: score for member, score in value})
                else:
                    key, _, member = key.partition("\n")
                    pipe.zadd(key, {member: value})
                if expires_at:
                    pipe.pexpireat(key, expires_at)
                loaded += 1
            pipe.execute()
            _sql(lambda: self._forget_expired(now))
            self._restored.add(prefix_root)
            return loaded

    def _carry_over(self, earlier: Sequence[str], moved_to: Callable[[str], str | None]) -> None:
        """Rename the rows of the earlier key layout to this layout's keys (a row already under
        its new key wins), or drop them, in one transaction."""
        found = [key for start in earlier for (key,) in self._db.execute(
            "SELECT key FROM team_keys WHERE key >= ? AND key < ?", (start, start + "\U0010ffff")).fetchall()]
        if not found:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for key in found:
                target = moved_to(key)
                if target is not None and target != key:
                    self._db.execute(
                        "INSERT INTO team_keys (key, kind, value, expires_at) SELECT ?, kind, value, expires_at "
                        "FROM team_keys WHERE key = ? ON CONFLICT(key) DO NOTHING", (target, key))
                if target != key:
                    self._db.execute("DELETE FROM team_keys WHERE key = ?", (key,))

    def _forget_expired(self, now: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM team_keys WHERE expires_at > 0 AND expires_at <= ?", (now,))
