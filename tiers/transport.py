"""The wire under the scripts: commands packed by hiredis and sent on a connection kept per client.

redis-py's ``execute_command`` wraps each command in retry and metrics hooks worth ~20 us, and
its retry sends a command again after any connection error, even when Redis already ran it. Here
a call is one exchange, and a broken one says exactly how far it got (:class:`ReplyLost`): which
commands certainly ran (their replies were read), which may have run (sent, no reply) and which
never left. Whether to send them again is the caller's decision (tiers/scripts.py), made per
script.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisClusterException, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tiers.async_bridge import pause
from tiers.cluster import SlotMap, is_cluster, slot_map

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


WAIT_MS = 1000  # how long a write waits for its replicas (``wait``) before it counts as not acknowledged


def exchange(client: Any, commands: Iterable[tuple[Any, ...]], wait: int = 0) -> list[Any]:
    """Send ``commands`` on one kept connection and read every reply (a failed command's reply is
    its ResponseError). Raises NotSent when no connection could be made, ReplyLost when it broke
    after the first command went out. On a Redis Cluster, on one connection per primary
    (:func:`_routed`). With ``wait``, WAIT follows the commands on each connection: fewer than
    ``wait`` replicas holding them within WAIT_MS is a ReplyLost (they ran on the primary, and
    a failover could still lose them)."""
    if is_cluster(client):
        return _routed(client, commands, wait)
    if wait:
        replies = exchange(client, itertools.chain(commands, [("WAIT", wait, WAIT_MS)]))
        acknowledged = replies.pop()
        if isinstance(acknowledged, ResponseError) or int(acknowledged) < wait:
            raise ReplyLost(f"{acknowledged} of {wait} replica(s) acknowledged the write within {WAIT_MS} ms",
                            [], len(replies))
        return replies
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


# -- a Redis Cluster: the same exchange, one connection per primary ------------------------------
REDIRECTS = 4  # rounds of MOVED / ASK / TRYAGAIN / unreachable-primary re-sends within one exchange
RETRY_PAUSE = 0.05  # seconds before the first re-send after TRYAGAIN or CLUSTERDOWN, doubled each round
UNSENT, ANSWERED, IN_DOUBT = 0, 1, 2
_NOT_RUN = (AskError, TryAgainError, ClusterDownError)  # replies of commands the cluster did not run (MOVED is an ASK)


def _key_of(command: tuple[Any, ...]) -> Any:
    """The key that picks a command's slot: a script's first key, another command's first argument."""
    if str(command[0]).upper() in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) else None
    return command[1] if len(command) > 1 else None


class _NodeBatch:
    """The commands of one exchange bound for one primary: packed, sent in chunks as they are
    encoded (as on a single server), then their replies read; a broken connection is recorded,
    not raised, so the other primaries' replies are still read."""

    def __init__(self, node: Any, asking: bool, wait: int):
        self.wait = wait
        self.acknowledged: Any = None  # WAIT's reply, with ``wait``
        self.connections = _reused(node)
        self.connection: Any = None
        self.asking = asking  # each command goes after ASKING (a slot being migrated here)
        self.positions: list[int] = []
        self.buffered: list[bytes] = []
        self.size = self.sent = 0
        self.error: BaseException | None = None

    def add(self, position: int, packed: bytes) -> None:
        self.positions.append(position)
        if self.asking:
            self.buffered.append(_pack(("ASKING",)))
        self.buffered.append(packed)
        self.size += len(packed)
        if self.size >= SEND_CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.error is not None or not self.buffered:
            return
        chunk, self.buffered, self.size = self.buffered, [], 0
        try:
            if self.connection is None:
                self.connection = self.connections.take()
            if self.connection._sock is None:
                self.connection.connect()
        except BROKEN as exc:
            self.error = exc  # nothing of this chunk left
            return
        try:
            self.connection.send_packed_command(chunk, check_health=False)
        except BROKEN as exc:
            self.error = exc  # a chunk that failed part-way may have delivered commands: they are in doubt
        self.sent += len(chunk)

    def finish(self) -> None:
        """Send what is buffered, and WAIT after it when the writes must reach replicas."""
        if self.wait and self.buffered:
            self.buffered.append(_pack(("WAIT", self.wait, WAIT_MS)))
        self.flush()

    def read(self, replies: list[Any], status: list[int]) -> None:
        per_command = 2 if self.asking else 1
        commands_sent = min(self.sent // per_command, len(self.positions))
        try:
            for index in range(commands_sent):
                if self.asking:
                    self._reply()
                position = self.positions[index]
                replies[position], status[position] = self._reply(), ANSWERED
            if self.wait and self.sent > commands_sent * per_command:
                self.acknowledged = self._reply()
                if isinstance(self.acknowledged, ResponseError) or int(self.acknowledged) < self.wait:
                    self.error = ReplyLost(f"{self.acknowledged} of {self.wait} replica(s) acknowledged the write "
                                           f"within {WAIT_MS} ms", [], 0)
                    for position in self.positions[:commands_sent]:
                        status[position] = IN_DOUBT  # ran on the primary, not known to be on a replica
        except BROKEN as exc:
            self.error = exc
        if self.error is not None:
            for position in self.positions[:commands_sent]:
                if status[position] != ANSWERED:
                    status[position] = IN_DOUBT
            if self.connection is not None:
                self.connection.disconnect()
        if self.connection is not None:
            self.connections.give(self.connection)

    def _reply(self) -> Any:
        try:
            return self.connection.read_response()
        except ResponseError as error:
            return error


def _pack(command: tuple[Any, ...]) -> bytes:
    if _pack_command is not None:
        return _pack_command(command)
    return b"".join(redis.connection.Connection().pack_command(*command))


def _send_routed(slots: SlotMap, items: Iterable[tuple[int, tuple[Any, ...]]], replies: list[Any],
                 status: list[int], ask: dict[int, Any], wait: int) -> None:
    """Send the (position, command) items to the primaries serving them (or, for a position in
    ``ask``, to the node an ASK named) as they come, reading every reply into ``replies`` /
    ``status`` once all are sent."""
    batches: dict[tuple[str, bool], _NodeBatch] = {}
    try:
        for position, command in items:
            if position in ask:
                host, port = ask[position]
                name, node, asking = f"{host}:{port}", slots.node_named(f"{host}:{port}"), True
            else:
                key = _key_of(command)
                try:
                    name, node = slots.node_client(key if key is not None else b"")
                except RedisClusterException as exc:  # no primary serves the slot now (a failover): not sent
                    slots.stale, slots.last_error = True, exc
                    continue
                asking = False
            batch = batches.get((name, asking))
            if batch is None:
                batch = batches[(name, asking)] = _NodeBatch(node, asking, wait)
            batch.add(position, _pack(command))
        for batch in batches.values():
            batch.finish()
    finally:
        for batch in batches.values():
            batch.read(replies, status)
    errors = [batch.error for batch in batches.values() if batch.error is not None]
    if errors:
        slots.stale = True  # a primary failed: ask for the slot map before the next command
        slots.last_error = errors[0]


def _routed(client: Any, lazy: Iterable[tuple[Any, ...]], wait: int = 0) -> list[Any]:
    """:func:`exchange` on a cluster: each command is sent as soon as it is made (the first
    round), so the primaries work while later commands are encoded. Commands that certainly did
    not run (never sent, or answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN) are sent again, up to
    REDIRECTS rounds, the slot map refreshed first after MOVED or a failed primary. What is left
    is reported as on one server: NotSent when nothing ran, else ReplyLost with the longest
    answered prefix; everything after it counts as maybe run (the caller re-sends it in its
    retry form)."""
    slots = slot_map(client)
    commands: list[tuple[Any, ...]] = []
    replies: list[Any] = []
    status: list[int] = []

    def first_round() -> Iterator[tuple[int, tuple[Any, ...]]]:
        for position, command in enumerate(lazy):
            commands.append(command)
            replies.append(None)
            status.append(UNSENT)
            yield position, command

    ask: dict[int, Any] = {}  # position -> the node an ASK sent it to (kept through TRYAGAIN, dropped by MOVED)
    _send_routed(slots, first_round(), replies, status, ask, wait)
    pending = list(range(len(commands)))
    for round_ in range(REDIRECTS + 1):
        for p in pending:
            if status[p] == ANSWERED and isinstance(replies[p], AskError):
                if type(replies[p]) is AskError:
                    ask[p] = replies[p].node_addr
                else:
                    ask.pop(p, None)
        moved = any(isinstance(replies[p], (MovedError, ClusterDownError)) for p in pending if status[p] == ANSWERED)
        again = [p for p in pending if status[p] == UNSENT or (status[p] == ANSWERED and isinstance(replies[p], _NOT_RUN))]
        if not again or round_ == REDIRECTS or any(status[p] == IN_DOUBT for p in pending):
            break
        if moved:
            slots.refresh()
        if any(isinstance(replies[p], (TryAgainError, ClusterDownError)) for p in again if status[p] == ANSWERED):
            pause(RETRY_PAUSE * 2**round_)  # a slot mid-migration, or a cluster mid-failover: give it a moment
        for p in again:
            status[p] = UNSENT
        pending = again
        _send_routed(slots, ((p, commands[p]) for p in again), replies, status, ask, wait)
    if all(state == ANSWERED for state in status):
        return replies
    slots.stale = True
    answered = next((i for i, state in enumerate(status) if state != ANSWERED), len(status))
    if answered == 0 and all(state == UNSENT for state in status):
        raise NotSent(f"cannot reach the Redis Cluster primaries serving these keys: {slots.last_error}")
    last_ran = max(i for i, state in enumerate(status) if state != UNSENT)
    raise ReplyLost(f"a Redis Cluster primary broke with {len(status) - answered} command(s) unanswered: "
                    f"{slots.last_error}",
                    replies[:answered], last_ran + 1 - answered)


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
