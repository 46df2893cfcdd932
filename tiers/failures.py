"""Where redis-py's exceptions become tiermem's for every read and write of the tiers (opening a
connection translates its own, tiers/connection.py).

A read that fails is a tier that did not answer (TierUnavailableError). A write that fails before
it left is the same; one whose reply was lost even after it was sent again may have taken effect
(OutcomeUnknownError). SQLAlchemy's errors are translated by the SQL tier itself (tiers/ltm.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from tiers.errors import OutcomeUnknownError, TierUnavailableError
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


def streamed(tier: str, calls: int, operation: Callable[[], list[Any]]) -> tuple[list[Any], int]:
    """Run a stream of ``calls`` writes, each atomic on its own: (one reply per call, how many
    calls may have run without answering). A call that failed, or never answered, has a
    TierUnavailableError for its reply; those that may have run come right after the last one
    that answered."""
    try:
        replies = operation()
    except ReplyLost as lost:
        failure = TierUnavailableError(tier, str(lost))
        return [*lost.replies, *[failure] * (calls - len(lost.replies))], lost.maybe_ran
    except RedisError as exc:  # nothing was sent
        return [TierUnavailableError(tier, str(exc))] * calls, 0
    return [TierUnavailableError(tier, str(reply)) if isinstance(reply, RedisError) else reply
            for reply in replies], 0
