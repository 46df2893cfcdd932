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
from memory.errors import InvalidInputError
from memory.record import NO_EMBEDDINGS, Embeddings, MemoryRecord

RESOLUTION_RANK = {"full": 0, "compressed": 1, "abstract": 2}


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
    in the spatial index). Runs on every store, so the common miss costs two dict lookups."""

    def __init__(self, key: str):
        self.key = key
        self.axes = (f"{key}_x", f"{key}_y", f"{key}_z")

    def __call__(self, contents: Any) -> tuple[float, ...] | None:
        if type(contents) is not dict and not isinstance(contents, Mapping):
            return None
        value = contents.get(self.key)
        if value is not None:
            if isinstance(value, (list, tuple)) and len(value) in (2, 3) and all(_finite(v) for v in value):
                return tuple(float(v) for v in value)
            return None
        x = contents.get(self.axes[0])
        if x is None:
            return None
        y, z = contents.get(self.axes[1]), contents.get(self.axes[2])
        if not (_finite(x) and _finite(y)):
            return None
        return (float(x), float(y), float(z)) if _finite(z) else (float(x), float(y))


def query_position(center: Any) -> tuple[float, float, float]:
    """A query center: 2 or 3 finite numbers, as (x, y, z) with z = 0 for a 2-D point."""
    if isinstance(center, np.ndarray):
        center = center.tolist()
    if not isinstance(center, (list, tuple)) or len(center) not in (2, 3) or not all(_finite(v) for v in center):
        raise InvalidInputError(f"a position must be 2 or 3 finite numbers, got {center!r}")
    x, y, *z = (float(v) for v in center)
    return x, y, z[0] if z else 0.0


def unit_vector(vector: Any, dim: int, what: str = "query_embedding") -> np.ndarray:
    """A caller's vector as a unit float32 array of ``dim`` values, or InvalidInputError."""
    try:
        array = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a sequence of numbers: {exc}") from None
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be one vector (1-D), got shape {array.shape}")
    if len(array) != dim:
        raise InvalidInputError(f"{what} has {len(array)} dimensions; this index has {dim}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{what} contains NaN or infinite values")
    norm = float(np.linalg.norm(array))
    if norm == 0.0:
        raise InvalidInputError(f"{what} is all zeros: it has no direction to compare")
    return (array / norm).astype(np.float32)


def positive_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidInputError(f"{name} must be a positive int, got {k!r}")
    return k


def radius_value(radius: Any) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius < 0:
        raise InvalidInputError(f"radius must be a finite number >= 0, got {radius!r}")
    return float(radius)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
