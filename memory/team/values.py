"""Values that agents share, as msgpack (never pickle), and the checks on what callers hand in.

Anything msgpack holds is accepted (dicts, lists, str, bytes, numbers, bool, None) plus ``...``
(Ellipsis, which the seeds use as a placeholder in lists), carried as an extension type. Tuples
come back as lists. Anything else is refused with a clear InvalidInputError before it is stored.

``text`` and ``finite`` check the strings and numbers that are stored as they are (a session's
purpose, a pattern's name, a confidence): Redis and SQL take UTF-8, so a lone surrogate is
refused here, where the caller can be told, rather than by the driver mid-write.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from tiers.errors import InvalidInputError

MAX_VALUE_BYTES = 1 << 20  # largest serialized value one key holds
MAX_TEXT = 1 << 16  # longest free text (a purpose, a reason) in characters, unless a caller says otherwise
_ELLIPSIS = 1  # msgpack extension code


def _extend(obj: Any) -> Any:
    if obj is Ellipsis:
        return msgpack.ExtType(_ELLIPSIS, b"")
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store a value of type {type(obj).__module__}.{type(obj).__qualname__}")


def _restore(code: int, data: bytes) -> Any:
    if code == _ELLIPSIS:
        return Ellipsis
    return msgpack.ExtType(code, data)


def pack(value: Any, what: str = "value") -> bytes:
    try:
        blob = msgpack.packb(value, use_bin_type=True, default=_extend)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{what} cannot be stored: {exc}") from None
    if len(blob) > MAX_VALUE_BYTES:
        raise InvalidInputError(f"{what} is {len(blob)} bytes serialized; the limit is {MAX_VALUE_BYTES}")
    return blob


def unpack(blob: bytes) -> Any:
    return msgpack.unpackb(blob, raw=False, strict_map_key=False, ext_hook=_restore)


def shown(value: Any) -> str:
    """``repr(value)`` cut to a readable length for an error message (a huge int is described:
    printing one past 4,300 digits raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    text_ = repr(value)
    return text_ if len(text_) <= 80 else text_[:77] + "..."


def text(value: Any, name: str, *, empty: bool = True, max_length: int = MAX_TEXT) -> str:
    """A str of at most ``max_length`` characters that UTF-8 can carry (no lone surrogate, no NUL)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")
    if not empty and not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty str, got {shown(value)}")
    if len(value) > max_length:
        raise InvalidInputError(f"{name} is {len(value)} characters long; the limit is {max_length}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{name} holds a lone surrogate ({value[exc.start]!r} at {exc.start}), not text") from None
    if "\x00" in value:
        raise InvalidInputError(f"{name} holds a NUL character at {value.index(chr(0))}")
    return value


def finite(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    """An int or float (not a bool) that is finite and, when given, within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number, got {type(value).__name__} {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond a float's range
        number = math.inf
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a finite number, got {shown(value)}")
    if low is not None and number < low:
        raise InvalidInputError(f"{name} must be at least {low}, got {shown(value)}")
    if high is not None and number > high:
        raise InvalidInputError(f"{name} must be at most {high}, got {shown(value)}")
    return number
