"""Durability for the embedded engine: working memory, staged patterns, sessions, collaboration
state and conflicts survive a restart, even a SIGKILL.

The embedded Redis (fakeredis) is snapshotted only on close and at exit. So every write to one
of those key families also writes the keys it touched, as they now are in Redis, into a SQLite
file beside the snapshot (``embedded-team.sqlite``), in one transaction: a write is either fully
there after a crash or not at all. Rows are keyed by the Redis key, so ids are SQL parameters and
never paths: no id can name a file, inside the data directory or outside it. Expiry is kept as an
absolute time, so a restart does not extend a TTL.

On the first open of a data directory in a process the file is authoritative for those families:
their keys from the older snapshot are dropped and the rows loaded. A lock serialises "write to
Redis, then copy to SQLite" per data directory, so concurrent threads never store a stale copy;
a write that is one script reads back what it touched in the same script call. Staged patterns
live in the process instead (memory/team/local_patterns.py) and hand their rows to ``store``.
The stdlib ``sqlite3`` driver is used directly (parameterised statements): through SQLAlchemy a
one-row upsert costs ~25x more, and this sits on every durable write.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import msgpack

from tiers.scripts import Script

FILE = "embedded-team.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS team_keys (
    key TEXT PRIMARY KEY,      -- the Redis key
    kind TEXT NOT NULL,        -- string | hash | zset | zmember (key: zset key, newline, member)
    value BLOB NOT NULL,       -- msgpack: bytes, [[field, value]...], [[member, score]...] or score
    expires_at INTEGER NOT NULL  -- unix ms; 0 = no expiry
)
"""

# A write script wrapped so that the same call reads back what it touched (the write's own KEYS and
# ARGV shadow the globals, so it runs unchanged), then per read-back key its value (GET, HGETALL,
# ZRANGE WITHSCORES, or one member's ZSCORE) and PTTL. With an empty write it is the read-back
# alone, for writes that are not one script. One call, where a pipeline of reads after the write
# costs ~2x on the embedded engine.
_READ_BACK = """
-- KEYS the write's keys, then the keys to read back; ARGV the write's args, then the read-back
-- kinds ('string', 'hash', 'zset' or 'zmember:<member>'), then the counts of the write's keys and args
-- returns {the write's reply, {value, pttl, ...}} (a missing value is nil)
local nk, na = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
local reply = (function(KEYS, ARGV)
-- the write --
end)({unpack(KEYS, 1, nk)}, {unpack(ARGV, 1, na)})
local out = {}
for i = nk + 1, #KEYS do
  local key, kind, value = KEYS[i], ARGV[na + i - nk]
  if kind == 'string' then value = redis.call('GET', key)
  elseif kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  else value = redis.call('ZSCORE', key, string.sub(kind, 9)) end
  out[#out + 1] = value
  out[#out + 1] = redis.call('PTTL', key)
end
return {reply or false, out}
"""


def reading_back(write: str) -> str:
    """``write`` (a Lua script) followed, in the same call, by a read-back of the keys it touched."""
    return _READ_BACK.replace("-- the write --", write)


# (redis key, kind): kind is "string", "hash" or "zset" (the whole key), or "zmember:<member>"
# (one member of a growing index, so a write copies what it changed, not the whole index)
Item = tuple[str, str]


class DurableMirror:
    def __init__(self, data_dir: str | Path, server: Any, client: Any):
        self.path = Path(data_dir) / FILE
        self.client = client
        self._scripts: dict[str, Any] = {}
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed write survives a process crash
        self._db.execute(_SCHEMA)
        # per embedded server: the lock that serialises durable writes, and the prefixes restored
        self.lock, self._restored = server.local("durable-copy", lambda: (threading.RLock(), set()))

    def close(self) -> None:
        self._db.close()

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

    def restore(self, prefix_root: str, scan_patterns: Sequence[str]) -> int:
        """Once per process and prefix: make Redis hold exactly what the file holds. Returns rows loaded."""
        with self.lock:
            if prefix_root in self._restored:
                return 0
            stale = [key for pattern in scan_patterns for key in self.client.scan_iter(match=pattern, count=1000)]
            now = int(time.time() * 1000)
            rows = self._db.execute(
                "SELECT key, kind, value, expires_at FROM team_keys WHERE key >= ? AND key < ?",
                (prefix_root, prefix_root + "\U0010ffff"),
            ).fetchall()
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
            with self._db:
                self._db.execute("DELETE FROM team_keys WHERE expires_at > 0 AND expires_at <= ?", (now,))
            self._restored.add(prefix_root)
            return loaded
