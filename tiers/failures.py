"""Where redis-py's exceptions become tiermem's: the only module that catches them.

A read that fails is a tier that did not answer (TierUnavailableError). A write that fails before
it left is the same; one whose reply was lost even after it was sent again may have taken effect
(OutcomeUnknownError). SQLAlchemy's errors are translated by the SQL tier itself (tiers/ltm.py).
"""

from __future__ import annotations

from typing import Callable, TypeVar

from redis.exceptions import RedisError

from memory.errors import OutcomeUnknownError, TierUnavailableError
from tiers.transport import ReplyLost

T = TypeVar("T")


def reading(tier: str, operation: Callable[[], T]) -> T:
    """Run a Redis read; TierUnavailableError if Redis did not answer."""
    try:
        return operation()
    except RedisError as exc:
        raise TierUnavailableError(tier, str(exc)) from exc


def writing(tier: str, operation: Callable[[], T]) -> T:
    """Run a Redis write; OutcomeUnknownError if its reply was lost, TierUnavailableError if it
    was refused or never sent."""
    try:
        return operation()
    except ReplyLost as exc:
        raise OutcomeUnknownError(tier, str(exc)) from exc
    except RedisError as exc:
        raise TierUnavailableError(tier, str(exc)) from exc
