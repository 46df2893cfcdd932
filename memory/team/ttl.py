"""How long each kind of shared data lives, in seconds (the seeds' strategy table)."""

from __future__ import annotations

import enum
import math

from memory.errors import InvalidInputError


class TTLStrategy(enum.IntEnum):
    WORKING_RESULTS = 3600  # 1 hour: analysis results, intermediate data
    STAGED_PATTERNS = 24 * 3600  # 24 hours: patterns awaiting validation
    COORDINATION = 300  # 5 minutes: signals, heartbeats, active-agent window
    CONFLICT_CONTEXT = 7 * 24 * 3600  # 7 days: unresolved conflicts
    SESSION = 1800  # 30 minutes since a team session's last activity


def ttl_ms(ttl: object, default: TTLStrategy) -> int:
    """A TTL in milliseconds: ``None`` takes ``default``; a strategy or seconds are honoured exactly."""
    if ttl is None:
        return int(default) * 1000
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise InvalidInputError(f"ttl must be a positive number of seconds or a TTLStrategy, got {ttl!r}")
    millis = round(float(ttl) * 1000)
    if millis < 1:
        raise InvalidInputError(f"ttl must be at least 1 ms, got {ttl!r} s")
    return millis
