"""The embedded Redis: fakeredis in-process, made durable through a snapshot in the data directory.

One fakeredis server per data directory per process (two engines on the same directory share it),
and one process per data directory (a lock file says so; several processes need a real Redis).
``save`` writes every key as msgpack (no pickle, unlike ``DUMP`` in fakeredis) to a temporary file
and renames it over the snapshot, so a crash while saving leaves the previous snapshot whole.

A save is skipped when the file already holds what a new snapshot would: no key changed since
the file was read or written (a change counter listens where fakeredis tells the watchers of a
key that it changed, so it sees every write WATCH sees, scripts' included), and no key carries a
TTL (a new snapshot would record how far its countdown got). So a process that only reads
leaves the file as it found it, byte for byte. A reader may record a value it derived from the
stores (an agent's LTM step bounds, computed from SQL when Redis lacks them); such a write,
made inside :func:`derived` by the thread that makes it, does not count: a process that loads
the file without it derives it again.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fakeredis
import msgpack
import zstandard

from tiers import embedded_client

SNAPSHOT = "embedded-redis.msgpack.zst"
LOCK = "embedded-redis.lock"
CLEAN = "embedded-redis.clean"  # written after the last snapshot of a clean release


_deriving = threading.local()  # depth of derived() blocks in this thread


@contextmanager
def derived() -> Iterator[None]:
    """Writes this thread makes in the block store only what a reader derives again when it is
    absent (a cache of what the stores hold), so they leave the snapshot current. Writes of
    other threads still count. Wrap nothing else in it: what it wraps may be missing after a
    restart."""
    _deriving.depth = getattr(_deriving, "depth", 0) + 1
    try:
        yield
    finally:
        _deriving.depth -= 1


class DataDirectoryBusy(RuntimeError):
    pass


class SnapshotUnreadable(RuntimeError):
    pass


class EmbeddedServer:
    """A fakeredis server bound to a data directory."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(data_dir / LOCK, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise DataDirectoryBusy(
                f"data directory {data_dir} is used by another process's embedded engine; "
                "point both at a Redis server (REDIS_URL) to share memories between processes"
            ) from exc
        self.server = fakeredis.FakeServer()
        self.users = 0
        self.changes = 0  # writes to the snapshotted database (db 0) since the server started
        self._saved_changes: int | None = None  # ``changes`` when the file last matched the server
        self._timed = False  # some key the file holds has a TTL
        self._before_save: list[Callable[[Any], None]] = []
        self._local: dict[Any, Any] = {}
        self._local_guard = threading.RLock()
        self._saving = threading.Lock()  # one snapshot at a time (they share the temporary file)
        # A snapshot without the clean mark was left by a process that died: LTM may hold moves
        # made after it. Each key prefix is reconciled with its LTM once (tiers/tierset.py).
        self.unclean = self.path.exists() and not (data_dir / CLEAN).exists()
        self.reconciled: set[str] = set()
        (data_dir / CLEAN).unlink(missing_ok=True)
        try:
            self.load()
        except SnapshotUnreadable:
            self.release()
            raise
        self._count_changes()

    def client(self) -> Any:
        return embedded_client.client(self.server)

    def _count_changes(self) -> None:
        """Count the changes to db 0 from here on; the file (if any) holds what the server holds now.
        Without the hook (a fakeredis that lacks it) every save writes."""
        hook = getattr(self.server.dbs[0], "add_change_callback", None)
        if hook is None:
            return
        hook(self._changed)
        if self.path.exists():
            self._saved_changes = self.changes

    def _changed(self) -> None:
        if not getattr(_deriving, "depth", 0):  # fakeredis runs a command in the caller's thread
            self.changes += 1

    def local(self, key: Any, make: Callable[[], Any]) -> Any:
        """State this process keeps beside the server (in-process signals, task queues, staged
        patterns, the durable copy's lock), shared by every memory on it: ``make()`` builds it
        the first time ``key`` is asked for, and it goes when the server does."""
        with self._local_guard:
            if key not in self._local:
                self._local[key] = make()
            return self._local[key]

    def before_save(self, write: Callable[[Any], None]) -> None:
        """Have ``write(client)`` put state kept in the process (task queues) into Redis keys
        before every snapshot, so the snapshot holds it."""
        self._before_save.append(write)

    @property
    def path(self) -> Path:
        return self.data_dir / SNAPSHOT

    def load(self) -> None:
        if not self.path.exists():
            return
        try:
            entries = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(self.path.read_bytes()), raw=True)
        except (OSError, ValueError, zstandard.ZstdError, msgpack.UnpackException) as exc:
            raise SnapshotUnreadable(
                f"the embedded snapshot {self.path} cannot be read ({exc}); it was left untouched"
            ) from exc
        client = self.client()
        pipe = client.pipeline(transaction=False)
        self._timed = any(ttl_ms > 0 for *_, ttl_ms in entries)
        for key, kind, value, ttl_ms in entries:
            kind = kind.decode()
            if kind == "string":
                pipe.set(key, value)
            elif kind == "hash":
                pipe.hset(key, mapping=dict(value))
            elif kind == "zset":
                pipe.zadd(key, {member: score for member, score in value})
            elif kind == "set":
                pipe.sadd(key, *value)
            elif kind == "list":
                pipe.rpush(key, *value)
            if ttl_ms > 0:
                pipe.pexpire(key, ttl_ms)
        pipe.execute()

    def save(self) -> bool:
        """Snapshot the server unless the file already holds what it holds; True if it wrote."""
        with self._saving:
            client = self.client()
            for write in self._before_save:
                write(client)
            changes = self.changes  # read before the keys: a write from here on is in the next save
            if self.unchanged(changes):
                return False
            self._save(client)
            self._saved_changes = changes
            return True

    def unchanged(self, changes: int | None = None) -> bool:
        """The snapshot file holds what a new snapshot would: nothing was written since the file
        was read or written, and none of its keys has a TTL."""
        changes = self.changes if changes is None else changes
        return (self._saved_changes is not None and changes == self._saved_changes and not self._timed
                and self.path.exists())

    def _save(self, client: Any) -> None:
        entries = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                value: Any = client.get(key)
            elif kind == "hash":
                value = list(client.hgetall(key).items())
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = list(client.smembers(key))
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            else:
                continue  # gone between SCAN and TYPE, or a type tiermem never writes
            ttl = client.pttl(key)
            entries.append([key, kind, value, ttl if ttl > 0 else 0])
        self._timed = any(ttl > 0 for *_, ttl in entries)
        blob = zstandard.ZstdCompressor(level=3).compress(msgpack.packb(entries, use_bin_type=True))
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def release(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


_servers: dict[Path, EmbeddedServer] = {}
_guard = threading.Lock()


def acquire(data_dir: str | Path) -> EmbeddedServer:
    """The process's embedded server for ``data_dir``, created (and restored) on first use."""
    path = Path(data_dir).resolve()
    with _guard:
        server = _servers.get(path)
        if server is None:
            server = EmbeddedServer(path)
            _servers[path] = server
        server.users += 1
        return server


def release(server: EmbeddedServer) -> None:
    """Snapshot the server; the last user also drops it and its lock, marking the snapshot clean."""
    with _guard:
        server.save()
        server.users -= 1
        if server.users == 0:
            _servers.pop(server.data_dir, None)
            (server.data_dir / CLEAN).touch()
            server.release()


@atexit.register
def _save_all_at_exit() -> None:
    with _guard:
        for server in list(_servers.values()):
            server.save()
            (server.data_dir / CLEAN).touch()
