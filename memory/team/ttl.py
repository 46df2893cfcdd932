"""How long each kind of shared data lives, in seconds (the TTL strategy table), and the one
check on every duration a caller gives the coordination layer (TTLs, leases, retention, waits)."""

from __future__ import annotations

import enum

from memory import validation
from tiers.errors import InvalidInputError

MAX_SECONDS = 366 * 24 * 3600  # the longest TTL, lease, retention or wait accepted: a year


class TTLStrategy(enum.IntEnum):
    WORKING_RESULTS = 3600  # 1 hour: analysis results, intermediate data
    STAGED_PATTERNS = 24 * 3600  # 24 hours: patterns awaiting validation
    COORDINATION = 300  # 5 minutes: signals, heartbeats, active-agent window
    CONFLICT_CONTEXT = 7 * 24 * 3600  # 7 days: unresolved conflicts
    SESSION = 1800  # 30 minutes since a team session's last activity


def seconds(value: object, name: str, *, zero: bool = False) -> float:
    """A duration: a finite number of seconds above 0 (or 0 itself with ``zero``), at most MAX_SECONDS."""
    number = validation.number(value, name)
    if not (number >= 0 if zero else number > 0) or number > MAX_SECONDS:
        lowest = "from 0" if zero else "above 0"
        raise InvalidInputError(
            f"{name} must be a number of seconds {lowest} up to {MAX_SECONDS} (366 days), got {validation.shown(value)}"
        )
    return number


def milliseconds(value: object, name: str) -> int:
    """A duration given in seconds, as whole milliseconds (at least 1): what Redis's PX takes."""
    millis = round(seconds(value, name) * 1000)
    if millis < 1:
        raise InvalidInputError(f"{name} must be at least 1 ms, got {validation.shown(value)} s")
    return millis


def ttl_ms(ttl: object, default: TTLStrategy, name: str = "ttl") -> int:
    """A TTL in milliseconds: ``None`` takes ``default``; a strategy or seconds are honoured exactly."""
    return int(default) * 1000 if ttl is None else milliseconds(ttl, name)
