"""redis.asyncio under tiermem's errors: the async counterpart of tiers/failures.py and of the
retry-safe script call of tiers/scripts.py.

A call that is harmless to repeat (a read, a delete) goes through the client's own
``execute_command``, whose retry sends it again after a broken connection. A script write does
not: that retry would send it up to ten times and never say whether it ran. :func:`call_once`
sends it on a connection of the client's pool itself, so a broken exchange says how far it got:
no connection (the script did not run: TierUnavailableError), or broken after the command went
out (it may have run: sent once more, and the script answers that call as it answered the first,
e.g. by a request id; lost again: OutcomeUnknownError).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tiers.errors import OutcomeUnknownError, TierUnavailableError

T = TypeVar("T")
BROKEN = (RedisConnectionError, RedisTimeoutError, OSError)


async def repeatable(tier: str, operation: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call that is harmless to repeat; TierUnavailableError if Redis did not answer."""
    try:
        return await operation()
    except RedisError as exc:
        raise TierUnavailableError(tier, str(exc)) from exc


def is_async_client(client: Any) -> bool:
    """Whether :func:`call_once` can use ``client``: a redis.asyncio client with a connection pool
    (``redis.asyncio.Redis``, fakeredis's ``FakeAsyncRedis``; not a cluster client)."""
    pool = getattr(client, "connection_pool", None)
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None)) and inspect.iscoroutinefunction(
        getattr(pool, "get_connection", None))


class AsyncScript:
    """A Lua script called by SHA, loaded again when Redis lost it (it restarted or was flushed)."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


async def call_once(tier: str, client: Any, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """Call a script whose call sent again answers as the first did; sent once more after a lost
    reply. TierUnavailableError if it did not run (no connection, or Redis refused it),
    OutcomeUnknownError if its reply was lost twice."""
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    try:
        return await _evalsha(client, script, command)
    except _NotSent as exc:
        raise TierUnavailableError(tier, f"cannot connect to Redis: {exc}") from exc
    except _ReplyLost as exc:
        lost = exc
    except RedisError as exc:  # an error reply: Redis refused the call
        raise TierUnavailableError(tier, str(exc)) from exc
    try:
        return await _evalsha(client, script, command)
    except (_NotSent, _ReplyLost, RedisError) as exc:  # the first call may have run
        raise OutcomeUnknownError(tier, f"the reply was lost ({lost}) and the call sent once more failed ({exc})") from exc


class _NotSent(Exception):
    """No connection could be made: the command did not reach Redis."""


class _ReplyLost(Exception):
    """The connection broke after the command began to go out: it may have run."""


async def _evalsha(client: Any, script: AsyncScript, command: tuple[Any, ...]) -> Any:
    try:
        return await _exchange(client, command)
    except NoScriptError:  # the script did not run
        await _exchange(client, ("SCRIPT", "LOAD", script.source))
        return await _exchange(client, command)


async def _exchange(client: Any, command: tuple[Any, ...]) -> Any:
    """Send one command on a connection of the client's pool and read its reply (an error reply is
    raised). The connection closes itself on any failure, so it goes back to the pool clean."""
    pool = client.connection_pool
    try:
        connection = await pool.get_connection()
    except BROKEN as exc:
        raise _NotSent(str(exc)) from exc
    try:
        await connection.send_command(*command, check_health=False)
        return await connection.read_response()
    except BROKEN as exc:
        raise _ReplyLost(str(exc)) from exc
    finally:
        await pool.release(connection)
