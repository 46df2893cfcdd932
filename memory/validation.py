"""Checks on everything a caller hands the engine, done before anything is written."""

from __future__ import annotations

import math
from collections.abc import Mapping  # abc isinstance checks are ~3x faster than typing's
from typing import Any

from memory.errors import InvalidInputError
from memory.record import MEMORY_TYPES
from tiers import keys
from tiers.codec import pack_contents

MAX_STEP = 2**53  # steps are Redis sorted-set scores: doubles hold integers exactly up to here


_known_agent_ids: set[str] = set()  # ids already checked: simulations repeat a few thousand ids


def agent_id(value: Any) -> str:
    if type(value) is str and value in _known_agent_ids:
        return value
    try:
        keys.validate_agent_id(value)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if len(_known_agent_ids) > 100_000:
        _known_agent_ids.clear()
    _known_agent_ids.add(value)
    return value


def memory_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise InvalidInputError(f"memory_id must be a non-empty str of at most 255 characters, got {value!r}")
    return value


def step(value: Any, name: str = "step_number") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value < MAX_STEP:
        raise InvalidInputError(f"{name} must be between 0 and 2**53, got {value}")
    return value


def importance(value: Any, name: str = "priority") -> float:
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case (NaN fails the range test)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, got {value}")
    return float(value)


def memory_type(value: Any) -> str:
    if value not in MEMORY_TYPES:
        raise InvalidInputError(f"memory_type must be one of {', '.join(MEMORY_TYPES)}; got {value!r}")
    return value


def optional_memory_type(value: Any) -> str | None:
    return None if value is None else memory_type(value)


def contents(value: Any, max_bytes: int) -> bytes:
    """Serialize memory contents, refusing non-mappings, unserializable values and oversize data."""
    if type(value) is not dict:  # the common case skips the abc check
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"memory data must be a dict, got {type(value).__name__}")
        value = dict(value)
    try:
        blob = pack_contents(value)
    except TypeError as exc:
        raise InvalidInputError(str(exc)) from None
    if len(blob) > max_bytes:
        raise InvalidInputError(f"memory data is {len(blob)} bytes serialized; the limit is {max_bytes}")
    return blob


def limit(value: Any, name: str = "limit") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative int or None, got {value!r}")
    return value


def attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidInputError("attributes must be a non-empty dict of dot paths to values")
    for path in value:
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise InvalidInputError(f"attribute path {path!r} must be a non-empty dot path like 'inventory.wood'")
    return dict(value)


def idempotency_key(value: Any) -> str:
    """A store's idempotency key: a non-empty str of at most 256 characters that encodes as UTF-8."""
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidInputError(f"idempotency_key must be a non-empty str of at most 256 characters, got {value!r}")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInputError(f"idempotency_key {value!r} cannot be encoded as UTF-8") from None
    return value
