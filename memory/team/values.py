"""Values that agents share, as msgpack (never pickle).

Anything msgpack holds is accepted (dicts, lists, str, bytes, numbers, bool, None) plus ``...``
(Ellipsis, a common placeholder in lists), carried as an extension type. Tuples come back as
lists. Anything else is refused with a clear InvalidInputError before it is stored. The strings
and numbers stored as they are (a purpose, a name, a confidence) are checked by memory.validation.
"""

from __future__ import annotations

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
