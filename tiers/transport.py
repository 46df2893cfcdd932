"""The wire under the scripts: commands packed by hiredis and sent on a connection kept per client.

redis-py's ``execute_command`` wraps each command in retry and metrics hooks worth ~20 us, and
its retry sends a command again after any connection error, even when Redis already ran it. Here
a call is one exchange, and a broken one says exactly how far it got (:class:`ReplyLost`): which
commands certainly ran (their replies were read), which may have run (sent, no reply) and which
never left. Whether to send them again is the caller's decision (tiers/scripts.py), made per
script.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

SEND_CHUNK_BYTES = 1 << 15  # send packed calls as soon as this much is encoded
BROKEN = (RedisConnectionError, RedisTimeoutError, OSError)

_pack_command: Callable[..., bytes] | None
try:  # hiredis packs a command ~2x faster than redis-py's pure-Python loop around it
    from hiredis import pack_command as _pack_command
except ImportError:  # pragma: no cover - hiredis is a dependency; stay correct without it
    _pack_command = None


class NotSent(RedisConnectionError):
    """No connection could be made: none of the commands reached Redis."""


class ReplyLost(RedisConnectionError):
    """The connection broke after commands went out: ``replies`` are those of the first commands
    (they ran), the next ``maybe_ran`` commands were sent (or partly sent) without a reply, and
    the rest never left."""

    def __init__(self, message: str, replies: list[Any], maybe_ran: int):
        super().__init__(message)
        self.replies = replies
        self.maybe_ran = maybe_ran


def exchange(client: Any, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` on one kept connection and read every reply (a failed command's reply is
    its ResponseError). Raises NotSent when no connection could be made, ReplyLost when it broke
    after the first command went out."""
    connections = _reused(client)
    try:
        connection = connections.take()
    except BROKEN as exc:
        raise NotSent(f"cannot connect to Redis: {exc}") from exc
    try:
        if connection._sock is None:  # a new or dropped connection: a dead Redis fails here, before sending
            try:
                connection.connect()
            except BROKEN as exc:
                raise NotSent(f"cannot connect to Redis: {exc}") from exc
        return _send_on(connection, commands)
    except BaseException:  # replies may be left unread: the next call starts on a new socket
        connection.disconnect()
        raise
    finally:
        connections.give(connection)


def _send_on(connection: Any, commands: Iterable[tuple[Any, ...]]) -> list[Any]:
    pack = _pack_command or (lambda command: b"".join(connection.pack_command(*command)))
    buffered: list[bytes] = []
    size = sent = 0
    replies: list[Any] = []
    try:
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
            buffered = []
        for _ in range(sent):  # read every reply, errors included, to keep the connection in step
            try:
                replies.append(connection.read_response())
            except ResponseError as error:
                replies.append(error)
    except BROKEN as exc:
        # a chunk that failed part-way may have delivered whole commands: count it as sent
        in_doubt = sent + len(buffered) - len(replies)
        if sent + len(buffered) == 0:
            raise NotSent(f"Redis connection failed before sending: {exc}") from exc
        raise ReplyLost(f"Redis connection broke with {in_doubt} command(s) unanswered: {exc}",
                        replies, in_doubt) from exc
    return replies


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
_REUSED: weakref.WeakKeyDictionary[Any, _ReusedConnections] = weakref.WeakKeyDictionary()
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
