"""The Lua scripts, loaded once per connection and called by SHA.

Calls go through EVALSHA directly, not redis-py's ``Script`` objects: those make every pipeline
ask ``SCRIPT EXISTS`` first, an extra round trip per query. When Redis answers NOSCRIPT (it was
restarted or flushed) the scripts are loaded again and the call is retried once. A script runs
atomically, so a retried call never applies twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from importlib import resources
from typing import Any, Callable, Iterable, Iterator, Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
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
        if not self._loaded:
            self.load()
        try:
            return evalsha(self.client, self.shas[name], keys, args)
        except NoScriptError:
            self.load()
            return evalsha(self.client, self.shas[name], keys, args)

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
        made again if Redis lost the scripts (or the connection dropped: see :func:`send_packed`).
        """
        if not self._loaded:
            self.load()

        def commands() -> Iterator[tuple[Any, ...]]:
            return (("EVALSHA", self.shas[name], len(keys), *keys, *args) for name, keys, args in calls())

        replies = send_packed(self.client, commands)
        errors = [reply for reply in replies if isinstance(reply, ResponseError)]
        if errors and all(isinstance(error, NoScriptError) for error in errors):
            self.load()
            replies = send_packed(self.client, commands)
            errors = [reply for reply in replies if isinstance(reply, ResponseError)]
        if errors:
            raise errors[0]
        return replies


class Script:
    """One Lua script called by SHA (see :func:`evalsha`), loaded again if Redis lost it. Called
    like redis-py's ``Script`` (``keys``, ``args``, and ``client`` for a pipeline, which
    redis-py's own handles), ~20 us cheaper a call on Redis."""

    def __init__(self, client: Any, source: str):
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._registered: Any = None

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is not None and client is not self.client:
            if self._registered is None:
                self._registered = self.client.register_script(self.source)
            return self._registered(keys=keys, args=args, client=client)
        try:
            return evalsha(self.client, self.sha, keys, args)
        except NoScriptError:
            self.client.script_load(self.source)
            return evalsha(self.client, self.sha, keys, args)


def evalsha(client: Any, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """One EVALSHA; ResponseError (NoScriptError included) raised. On a redis-py client it is
    packed by hiredis and sent on a kept connection (:func:`send_packed`), skipping ~20 us of
    per-command wrapping; the embedded client's own single commands are leaner still (no RESP)."""
    if getattr(client, "lean_commands", False):
        return client.evalsha(sha, len(keys), *keys, *args)
    (reply,) = send_packed(client, lambda: [("EVALSHA", sha, len(keys), *keys, *args)])
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def send_packed(client: Any, commands: Callable[[], Iterable[tuple[Any, ...]]]) -> list[Any]:
    """Send commands on one connection the client keeps (see _ReusedConnections), packed by
    hiredis, and read every reply (a failed command's reply is its ResponseError). redis-py's
    ``execute_command`` wraps each command in retry and metrics hooks worth ~20 us; like it, this
    tries once more on a connection that failed (one to a restarted Redis), making
    ``commands()`` again."""
    connections = _reused(client)
    for attempt in (1, 2):
        connection = connections.take()
        try:
            return _send_on(connection, commands())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            connection.disconnect()
            if attempt == 2:
                raise
        except BaseException:  # replies may be left unread: start the next call on a new socket
            connection.disconnect()
            raise
        finally:
            connections.give(connection)
    raise AssertionError("unreachable")


class _ReusedConnections:
    """Connections taken from a client's redis-py pool once and handed out again without the
    pool's per-call bookkeeping (a lock, a readiness poll, metrics and events: 10-20 us a call).
    Idle ones wait in a list, whose pop and append are atomic; a forked child starts with none,
    as the pool does. The pool still owns them: closing the client disconnects them, and they go
    back to it when the client is collected."""

    def __init__(self, pool: Any):
        self.pool = pool
        self.idle: list[Any] = []
        self.pid = os.getpid()

    def take(self) -> Any:
        if self.pid != os.getpid():  # the parent's sockets are not this process's to use
            self.idle, self.pid = [], os.getpid()
        try:
            return self.idle.pop()
        except IndexError:
            return self.pool.get_connection()

    def give(self, connection: Any) -> None:
        self.idle.append(connection)

    def give_back(self) -> None:
        if self.pid == os.getpid():
            for connection in self.idle:
                self.pool.release(connection)
        self.idle = []


# Per client, not per pool: the connections refer to their pool, so a weak mapping keyed by the
# pool would keep every pool alive.
_REUSED: "weakref.WeakKeyDictionary[Any, _ReusedConnections]" = weakref.WeakKeyDictionary()
_REUSED_LOCK = threading.Lock()


def _reused(client: Any) -> _ReusedConnections:
    connections = _REUSED.get(client)
    if connections is None:
        with _REUSED_LOCK:
            connections = _REUSED.get(client)
            if connections is None:
                connections = _REUSED[client] = _ReusedConnections(client.connection_pool)
                weakref.finalize(client, connections.give_back)
    return connections


def _send_on(connection: Any, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    pack = _pack_command or (lambda command: b"".join(connection.pack_command(*command)))
    buffered: list[bytes] = []
    size = sent = 0
    for command in commands:
        packed = pack(command)
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
