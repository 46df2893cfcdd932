"""Three vector resolutions, one per tier, each smaller than the one before.

    full        STM   float32                          4 bytes per dimension
    compressed  IM    float16                          2 bytes per dimension
    abstract    LTM   int8 + a per-vector float32 scale  1 byte per dimension + 4

Scalar quantization, chosen over product quantization and PCA because it needs no training (so
no codebook to version, persist and keep in step across processes), is deterministic, and keeps
every dimension. Measured on 384-d vectors (benchmarks/bench_resolution.py) it loses little
recall; a search that needs the last bit re-ranks its candidates with full vectors.

The stored bytes are little-endian whatever the machine: an abstract blob is the scale (``<f4``)
followed by ``dim`` signed bytes, the vector being ``scale * int8``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESOLUTIONS = ("full", "compressed", "abstract")

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_INT8_LEVELS = 127  # symmetric: -127..127, so a vector and its negation quantize alike


def stored_size(dim: int, resolution: str) -> int:
    """Bytes one vector of ``dim`` dimensions takes at ``resolution``."""
    _check_dim(dim)
    _check_resolution(resolution)
    if resolution == "full":
        return 4 * dim
    if resolution == "compressed":
        return 2 * dim
    return dim + 4


def dimension(blob: bytes, resolution: str) -> int:
    """The number of dimensions of one stored vector, read off its size."""
    _check_resolution(resolution)
    if resolution == "full":
        return len(blob) // 4
    if resolution == "compressed":
        return len(blob) // 2
    return len(blob) - 4


def restore_one(blob: bytes, resolution: str) -> np.ndarray:
    """One stored vector as float32, without :func:`restore`'s checks: for blobs this package
    wrote, on paths that decode one vector per returned memory."""
    if resolution == "full":
        return np.frombuffer(blob, dtype="<f4").astype(np.float32)
    if resolution == "compressed":
        return np.frombuffer(blob, dtype="<f2").astype(np.float32)
    scale = np.frombuffer(blob, dtype="<f4", count=1)[0]
    return np.frombuffer(blob, dtype=np.int8, offset=4).astype(np.float32) * scale


def reduce(vectors: np.ndarray, resolution: str) -> list[bytes]:
    """One blob per row of ``vectors`` (n, dim), at ``resolution``."""
    _check_resolution(resolution)
    matrix = _checked_matrix(vectors)
    if resolution == "full":
        rows = matrix.astype("<f4", copy=False)
    elif resolution == "compressed":
        too_big = np.abs(matrix).max(axis=1, initial=0.0) > _FLOAT16_MAX
        if too_big.any():
            raise ValueError(
                f"row {int(np.flatnonzero(too_big)[0])} has a value beyond float16's range "
                f"(±{_FLOAT16_MAX:g}); store it at 'full' resolution"
            )
        rows = matrix.astype("<f2")
    else:
        rows = _quantized_int8(matrix)
    return [row.tobytes() for row in rows]


def restore(blobs: Sequence[bytes], resolution: str, dim: int) -> np.ndarray:
    """The float32 (n, dim) vectors that ``reduce`` stored; (0, dim) for no blobs."""
    size = stored_size(dim, resolution)
    for index, blob in enumerate(blobs):
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob {index} is {type(blob).__name__!r}, not bytes")
        if len(blob) != size:
            raise ValueError(
                f"blob {index} has {len(blob)} bytes; a {dim}-d {resolution} vector has {size}"
            )
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), size)
    if resolution == "full":
        return raw.view("<f4").astype(np.float32)
    if resolution == "compressed":
        return raw.view("<f2").astype(np.float32)
    scales = np.ascontiguousarray(raw[:, :4]).view("<f4").astype(np.float32)  # (n, 1)
    return raw[:, 4:].view(np.int8).astype(np.float32) * scales


def _quantized_int8(matrix: np.ndarray) -> np.ndarray:
    """Rows of [scale as 4 little-endian bytes, dim int8 codes] as a uint8 (n, dim + 4) array."""
    peaks = np.abs(matrix).max(axis=1, keepdims=True, initial=0.0)
    scales = (peaks / _INT8_LEVELS).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1.0))
    codes = np.clip(np.rint(matrix / safe), -_INT8_LEVELS, _INT8_LEVELS).astype(np.int8)
    scale_bytes = scales.astype("<f4").view(np.uint8).reshape(len(matrix), 4)
    return np.concatenate([scale_bytes, codes.view(np.uint8)], axis=1)


def _checked_matrix(vectors) -> np.ndarray:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"vectors must be a numeric (n, dim) array: {exc}") from exc
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"vectors must be a 2-D (n, dim) array with dim >= 1, got shape {matrix.shape}")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise ValueError(f"row {int(np.flatnonzero(~finite)[0])} has NaN or infinite values")
    return matrix


def _check_resolution(resolution) -> None:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")


def _check_dim(dim) -> None:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an int >= 1, got {dim!r}")
