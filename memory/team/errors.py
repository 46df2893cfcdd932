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

A store that did not answer (Redis, the pattern library's SQL, the embedded engine's durable copy)
surfaces as MemoryStoreException (writes) or MemoryRetrievalException (reads); a write whose reply
was lost twice as OutcomeUnknownError (a MemoryStoreException), as the stores in
tiers/coordination/ raise it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryRetrievalException,
    MemoryStoreException,
    TierUnavailableError,
)

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
    """Re-raise a store that did not answer (TierUnavailableError, from tiers/coordination/) inside
    the wrapped call as the error of its ``kind``.

    ``kind`` is "write" (MemoryStoreException) or "read" (MemoryRetrievalException); tiermem's other
    errors (OutcomeUnknownError included) pass through unchanged.
    """
    error = MemoryStoreException if kind == "write" else MemoryRetrievalException

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except TierUnavailableError as exc:
                raise error(f"{function.__qualname__} failed: {exc}") from exc

        return wrapper  # type: ignore[return-value]

    return decorate
