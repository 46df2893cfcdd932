"""What a store derives from a memory's contents for the indices: its position and state vector.

Both are computed once, at store time, and travel inside the record through every tier, so no
index ever decodes a payload. Query inputs (a query vector, a center) are checked here too, with
errors that name the problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping  # abc isinstance checks are ~3x faster than typing's
from typing import Any

import numpy as np

from embeddings.resolution import reduce, restore_one
from memory.validation import count, is_number, number, shown
from tiers.errors import InvalidInputError
from tiers.record import NO_EMBEDDINGS, Embeddings, MemoryRecord

RESOLUTION_RANK = {"full": 0, "compressed": 1, "abstract": 2}
TIER_RESOLUTION = {"stm": "full", "im": "compressed", "ltm": "abstract"}  # the vectors each tier keeps
# A query's coordinates stay within this, so that a distance's squares (the indices square
# coordinate differences) and a box's center and extent remain finite floats.
MAX_COORDINATE = 1e150


def at_resolution(record: MemoryRecord, resolution: str) -> MemoryRecord:
    """The record with its vectors reduced to ``resolution`` (a tier move downwards); a vector
    already at that resolution or coarser is kept as it is."""
    embeddings = record.embeddings
    if embeddings is NO_EMBEDDINGS:
        return record
    fields: dict[str, Any] = {}
    state = embeddings.state
    if state is not None:
        fields[f"{state[0]}_vector"] = state[1]
        if RESOLUTION_RANK[state[0]] < RESOLUTION_RANK[resolution]:
            fields = {f"{resolution}_vector": _reduce(state, resolution)}
    text = embeddings.text
    if text is not None:
        if RESOLUTION_RANK[text[0]] < RESOLUTION_RANK[resolution]:
            text = (resolution, _reduce(text, resolution))
        fields["text_resolution"], fields["text_vector"] = text
    return record._replace(embeddings=Embeddings(**fields))


def _reduce(stored: tuple[str, bytes], resolution: str) -> bytes:
    current, blob = stored
    return reduce(restore_one(blob, current).reshape(1, -1), resolution)[0]


class PositionReader:
    """Reads a memory's place from its contents: ``contents[key]`` as 2 or 3 finite numbers,
    else ``<key>_x/_y[/_z]``; None when absent or not a position (such a memory is simply not
    in the spatial index), as for coordinates beyond +-MAX_COORDINATE, whose distances would
    overflow. Runs on every store, so the common miss costs two dict lookups."""

    def __init__(self, key: str):
        self.key = key
        self.axes = (f"{key}_x", f"{key}_y", f"{key}_z")

    def __call__(self, contents: Any) -> tuple[float, ...] | None:
        if type(contents) is not dict and not isinstance(contents, Mapping):
            return None
        value = contents.get(self.key)
        if value is not None:
            if type(value) is list and len(value) == 2:  # the common case, without a generator
                x, y = value
                if type(x) in _PLAIN and type(y) in _PLAIN:
                    return (float(x), float(y)) if -MAX_COORDINATE <= x <= MAX_COORDINATE and \
                        -MAX_COORDINATE <= y <= MAX_COORDINATE else None
            if isinstance(value, (list, tuple)) and len(value) in (2, 3) and all(is_number(v) for v in value):
                return _placed(tuple(float(v) for v in value))
            return None
        x = contents.get(self.axes[0])
        if x is None:
            return None
        y, z = contents.get(self.axes[1]), contents.get(self.axes[2])
        if not (is_number(x) and is_number(y)):
            return None
        return _placed((float(x), float(y), float(z)) if is_number(z) else (float(x), float(y)))


_PLAIN = (int, float)  # exact types: a bool is neither; NaN and the infinities fail the range test


def _placed(point: tuple[float, ...]) -> tuple[float, ...] | None:
    return point if all(-MAX_COORDINATE <= v <= MAX_COORDINATE for v in point) else None


def query_position(center: Any, name: str = "a position") -> tuple[float, float, float]:
    """A query center or box corner: 2 or 3 finite numbers within +-MAX_COORDINATE, as (x, y, z)
    with z = 0 for a 2-D point."""
    if isinstance(center, np.ndarray):
        center = center.tolist()
    if not isinstance(center, (list, tuple)) or len(center) not in (2, 3) or not all(is_number(v) for v in center):
        raise InvalidInputError(f"{name} must be 2 or 3 finite numbers, got {shown(center)}")
    x, y, *z = (float(v) for v in center)
    if max(abs(x), abs(y), abs(z[0]) if z else 0.0) > MAX_COORDINATE:
        raise InvalidInputError(f"{name} must lie within +-1e150 on every axis, got {shown(center)}")
    return x, y, z[0] if z else 0.0


def unit_vector(vector: Any, dim: int, what: str = "query_embedding") -> np.ndarray:
    """A caller's vector as a unit float32 array of ``dim`` values, or InvalidInputError."""
    try:
        array = np.asarray(vector)
        if array.dtype.kind not in "iufO":  # bools, strings, dates are not coordinates
            raise TypeError(f"got {array.dtype.name} values")
        array = array.astype(np.float64)  # objects: ints too large for a float fail here
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{what} must be a sequence of numbers: {exc}") from None
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be one vector (1-D), got shape {array.shape}")
    if len(array) != dim:
        raise InvalidInputError(f"{what} has {len(array)} dimensions; this index has {dim}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{what} contains NaN or infinite values")
    norm = float(np.linalg.norm(array))
    if not 0.0 < norm < math.inf:  # zeros, or a norm that overflowed or underflowed: scale first
        scale = float(np.max(np.abs(array)))
        if scale == 0.0:
            raise InvalidInputError(f"{what} is all zeros: it has no direction to compare")
        array = array / scale
        norm = float(np.linalg.norm(array))
    return (array / norm).astype(np.float32)


def positive_k(k: Any, name: str = "k") -> int:
    """How many answers a ranked query returns: 1 up to validation.MAX_COUNT."""
    return count(k, name, minimum=1)


def radius_value(radius: Any) -> float:
    value = number(radius, "radius")
    if value < 0:
        raise InvalidInputError(f"radius must be a finite number >= 0, got {shown(radius)}")
    return value
