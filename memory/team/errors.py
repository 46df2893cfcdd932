"""The coordination layer's errors, under tiermem's one exception root.

    MemoryAPIException
    ├── MemoryStoreException
    │   ├── InvalidInputError            (ValueError) a bad id, key, text, number, duration, value,
    │   │                                object or credentials handed to a call, named in the message
    │   ├── DuplicateTaskError           (ValueError) a task id the team already has
    │   └── TaskOwnershipError           completing a task the caller does not hold
    ├── MemoryRetrievalException
    │   └── NotFoundError                (KeyError) no such task, pattern or conflict
    ├── AccessDeniedError                (PermissionError) the caller's tier is too low
    └── MemoryConfigException            (ValueError) a bad connection option (url, client, data_dir,
                                         key_prefix, clock, host, port...)

A Redis failure surfaces as MemoryStoreException (writes) or MemoryRetrievalException (reads).
"""

from __future__ import annotations

import functools
import sqlite3
from typing import Any, Callable, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from memory.errors import InvalidInputError, MemoryAPIException, MemoryRetrievalException, MemoryStoreException

__all__ = [
    "AccessDeniedError",
    "DuplicateTaskError",
    "InvalidInputError",
    "NotFoundError",
    "TaskOwnershipError",
    "translated",
]

F = TypeVar("F", bound=Callable[..., Any])


class AccessDeniedError(MemoryAPIException, PermissionError):
    """The caller's access tier does not allow the operation; names the tier it needs."""

    def __init__(self, agent_id: str, tier: object, required: object, operation: str):
        super().__init__(
            f"{operation} needs access tier {getattr(required, 'name', required)} or higher; "
            f"agent {agent_id!r} has {getattr(tier, 'name', tier)}"
        )
        self.agent_id = agent_id
        self.tier = tier
        self.required = required
        self.operation = operation


class DuplicateTaskError(MemoryStoreException, ValueError):
    """A task with this id was already added to the team's queue (pending, claimed or done)."""


class TaskOwnershipError(MemoryStoreException):
    """The task is not claimed by the agent that tried to complete it (or is not claimed at all)."""


class NotFoundError(MemoryRetrievalException, KeyError):
    """No task, pattern or conflict with that id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def translated(kind: str) -> Callable[[F], F]:
    """Re-raise a Redis or SQL failure inside the wrapped call as the error of its ``kind``.

    ``kind`` is "write" (MemoryStoreException) or "read" (MemoryRetrievalException); tiermem's own
    errors pass through unchanged.
    """
    error = MemoryStoreException if kind == "write" else MemoryRetrievalException

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except (RedisError, SQLAlchemyError, sqlite3.Error) as exc:
                raise error(f"{function.__qualname__} failed: {type(exc).__name__}: {exc}") from exc

        return wrapper  # type: ignore[return-value]

    return decorate
