"""The Lua scripts, loaded once per connection and called by SHA.

Calls go through EVALSHA directly, not redis-py's ``Script`` objects: those make every pipeline
ask ``SCRIPT EXISTS`` first, an extra round trip per query. When Redis answers NOSCRIPT (it was
restarted or flushed) the scripts are loaded again and the call is retried once. A script runs
atomically, so a retried call never applies twice.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, Callable, Iterable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

SEND_CHUNK_BYTES = 1 << 15  # send packed calls as soon as this much is encoded

try:  # hiredis packs a command ~2x faster than redis-py's pure-Python loop around it
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency; stay correct without it
    _pack_command = None

NAMES = (
    "put", "delete", "move", "range", "get", "touch", "set_importance", "release", "renew", "tier_stats", "snapshot",
    "set_vectors", "note", "changes", "range_redis",
)


def _source(name: str) -> str:
    folder = resources.files("tiers") / "lua"
    return (folder / "lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


class Scripts:
    def __init__(self, client: Any):
        self.client = client
        self.sources = {name: _source(name) for name in NAMES}
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in self.sources.items()}
        self._loaded = False

    def load(self) -> None:
        for src in self.sources.values():
            self.client.script_load(src)
        self._loaded = True

    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One script call, packed by hiredis and sent on a pooled connection (see :meth:`stream`):
        redis-py's ``evalsha`` adds ~20 us of retry and metrics wrapping to every call."""
        return self.stream(lambda: [(name, keys, args)])[0]

    def queue(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        """Add a call to a pipeline; the caller runs it through :meth:`execute`."""
        pipe.evalsha(self.shas[name], len(keys), *keys, *args)

    def execute(self, pipe: Any) -> list[Any]:
        """Run a pipeline of script calls, loading the scripts first if Redis lost them.

        Only read pipelines go through here: re-running them after NOSCRIPT is harmless.
        """
        if not self._loaded:
            self.load()
        commands = list(pipe.command_stack)
        try:
            return pipe.execute()
        except NoScriptError:
            self.load()
            pipe.command_stack = commands
            return pipe.execute()

    def stream(self, calls: Callable[[], Iterable[tuple[str, list[str], list[Any]]]]) -> list[Any]:
        """Run many script calls on one connection, sending each chunk as soon as it is encoded.

        A pipeline encodes every call before sending the first; here Redis runs the first calls
        while Python encodes the next ones. ``calls`` makes the (name, keys, args) sequence; it is
        made again if Redis lost the scripts or the connection dropped (a pooled connection to a
        restarted Redis), as redis-py itself retries a command once its connection fails.
        """
        if not self._loaded:
            self.load()
        pool = self.client.connection_pool
        for attempt in (1, 2):
            connection = pool.get_connection()
            try:
                replies = self._stream_on(connection, calls())
            except (RedisConnectionError, RedisTimeoutError, OSError):
                connection.disconnect()
                if attempt == 2:
                    raise
                continue
            except RedisError:
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
            errors = [reply for reply in replies if isinstance(reply, ResponseError)]
            if not errors:
                return replies
            if attempt == 1 and all(isinstance(error, NoScriptError) for error in errors):
                self.load()
                continue
            raise errors[0]
        raise AssertionError("unreachable")

    def _stream_on(self, connection: Any, calls: Iterable[tuple[str, list[str], list[Any]]]) -> list[Any]:
        pack = _pack_command or (lambda command: b"".join(connection.pack_command(*command)))
        buffered: list[bytes] = []
        size = sent = 0
        for name, keys, args in calls:
            packed = pack(("EVALSHA", self.shas[name], len(keys), *keys, *args))
            buffered.append(packed)
            size += len(packed)
            if size >= SEND_CHUNK_BYTES:
                connection.send_packed_command(buffered, check_health=False)
                sent += len(buffered)
                buffered, size = [], 0
        if buffered:
            connection.send_packed_command(buffered, check_health=False)
            sent += len(buffered)
        replies = []
        for _ in range(sent):  # read every reply, errors included, to keep the connection in step
            try:
                replies.append(connection.read_response())
            except ResponseError as error:
                replies.append(error)
        return replies
