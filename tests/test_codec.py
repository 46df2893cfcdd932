"""Contents serialization: msgpack decides what can be stored and the bytes it becomes.

pack_contents tries ormsgpack first (faster); these cases pin that the result is always the
bytes msgpack would write and that it reads back, and that the rest is refused.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import math
import uuid
from typing import Any

import msgpack
import numpy as np
import pytest

from tiers.codec import _to_plain, pack_contents
from tiers.record import unpack_contents


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 2


class Mode(str, enum.Enum):  # noqa: UP042 - the (str, Enum) mixin users write, not StrEnum
    FAST = "fast"


@dataclasses.dataclass
class Point:
    x: int = 1


Pair = collections.namedtuple("Pair", "left right")


def _nested(depth: int) -> list[Any]:
    root = current = []
    for _ in range(depth):
        current.append([])
        current = current[0]
    return root


STORABLE = {
    "plain": {"step": 3, "name": "agent-007", "health": 98.5, "alive": True, "goal": None},
    "nested": {"inventory": {"wood": 5, "stone": [1, 2, (3, 4)]}, "visible": ["a", "b"]},
    "int keys": {1: "one", 2: {3: "three"}},
    "None, float and bytes keys": {None: 0, 1.5: "half", b"k": "bytes"},
    "bytes": {"raw": b"\x00\xff", "array": bytearray(b"ab"), "view": memoryview(b"cd")},
    "extremes": {"big": 2**64 - 1, "small": -(2**63), "nan": math.nan, "inf": -math.inf, "tiny": 5e-324},
    "unicode": {"text": "é" * 40 + "漢字", "long": "x" * 70_000, "many": list(range(300))},
    "numpy": {"array": np.arange(4), "scalar": np.float32(1.5), "matrix": np.eye(2)},
    "int enum": {"level": Level.HIGH},
    "str enum": {"mode": Mode.FAST},
    "namedtuple": {"pair": Pair(1, 2)},
    "ordered dict inside": {"inner": collections.OrderedDict(a=1, b=2)},
    "ext type": {"ext": msgpack.ExtType(5, b"ab")},
    "300 levels deep": {"deep": _nested(300)},
}

REFUSED = {
    "datetime": {"at": datetime.datetime(2026, 11, 21, 12, 0)},
    "date": {"on": datetime.date(2026, 11, 21)},
    "time": {"at": datetime.time(1, 2)},
    "timedelta": {"for": datetime.timedelta(days=1)},
    "uuid": {"id": uuid.UUID(int=7)},
    "plain enum": {"colour": Colour.RED},
    "dataclass": {"point": Point()},
    "set": {"tags": {1, 2}},
    "object": {"thing": object()},
    "decimal": {"price": decimal.Decimal("1.5")},
    "complex": {"z": 1j},
    "int too big": {"n": 2**64},
    "int too small": {"n": -(2**63) - 1},
    "tuple key": {(1, 2): "pair"},  # msgpack writes it as an array, which cannot be a key again
}


def _msgpack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, default=_to_plain)


@pytest.mark.parametrize("name", STORABLE)
def test_contents_are_the_bytes_msgpack_writes(name: str) -> None:
    value = STORABLE[name]
    blob = pack_contents(value)
    assert blob == _msgpack(value)
    assert _msgpack(unpack_contents(blob)) == blob  # reads back (NaN-safe: compared as bytes)


@pytest.mark.parametrize("name", REFUSED)
def test_what_msgpack_refuses_is_refused(name: str) -> None:
    value = REFUSED[name]
    with pytest.raises(TypeError, match="cannot be serialized"):
        pack_contents(value)
