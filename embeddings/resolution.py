"""Three vector resolutions, one per tier, each smaller than the one before.

    full        STM   float32                          4 bytes per dimension
    compressed  IM    float16                          2 bytes per dimension
    abstract    LTM   int8 + a 4-bit residual             1.5 bytes per dimension + 4
                      + a per-vector float32 scale

Scalar quantization, chosen over product quantization and PCA because it needs no training (so
no codebook to version, persist and keep in step across processes), is deterministic, and keeps
every dimension. The abstract resolution adds a 4-bit residual to the int8 codes: int8 alone
(1 byte per dimension) left a score error of ~1e-3 on 384-d unit vectors, enough to swap
neighbours of clustered data (recall@10 0.97-0.986 against the float32 originals); with the
residual the error is 15 times smaller and recall measures 1.0, for half a byte more per
dimension, still below float16 (benchmarks/bench_resolution.py).

The stored bytes are little-endian whatever the machine: an abstract blob is the scale (``<f4``),
``dim`` signed bytes ``c``, then ``ceil(dim / 2)`` bytes of residual nibbles ``r`` (dimension
``2i`` in the low nibble of byte ``i``, ``2i + 1`` in the high one, each stored as ``r + 8`` for
``r`` in -8..7); the vector is ``scale * (c + r / 15)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESOLUTIONS = ("full", "compressed", "abstract")

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_INT8_LEVELS = 127  # symmetric: -127..127, so a vector and its negation quantize alike
_RESIDUAL_STEPS = 15  # residual steps per int8 step: the rounding error (±0.5) spans -7.5..7.5 of them


def stored_size(dim: int, resolution: str) -> int:
    """Bytes one vector of ``dim`` dimensions takes at ``resolution``."""
    _check_dim(dim)
    _check_resolution(resolution)
    if resolution == "full":
        return 4 * dim
    if resolution == "compressed":
        return 2 * dim
    return 4 + dim + (dim + 1) // 2


def dimension(blob: bytes, resolution: str) -> int:
    """The number of dimensions of one stored vector, read off its size."""
    _check_resolution(resolution)
    if resolution == "full":
        return len(blob) // 4
    if resolution == "compressed":
        return len(blob) // 2
    return 2 * (len(blob) - 4) // 3  # 1.5 bytes per dimension, the odd one rounding up


def restore_one(blob: bytes, resolution: str) -> np.ndarray:
    """One stored vector as float32, without :func:`restore`'s checks: for blobs this package
    wrote, on paths that decode one vector per returned memory."""
    if resolution == "full":
        return np.frombuffer(blob, dtype="<f4").astype(np.float32)
    if resolution == "compressed":
        return np.frombuffer(blob, dtype="<f2").astype(np.float32)
    raw = np.frombuffer(blob, dtype=np.uint8)
    return _dequantized(raw.reshape(1, -1), dimension(blob, resolution))[0]


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
        rows = _quantized(matrix)
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
    return _dequantized(raw, dim)


def _quantized(matrix: np.ndarray) -> np.ndarray:
    """Abstract rows as a uint8 (n, stored_size) array: scale, int8 codes, residual nibbles."""
    n, dim = matrix.shape
    peaks = np.abs(matrix).max(axis=1, keepdims=True, initial=0.0)
    scales = (peaks / _INT8_LEVELS).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1.0))
    units = matrix / safe
    codes = np.clip(np.rint(units), -_INT8_LEVELS, _INT8_LEVELS)
    residual = np.clip(np.rint((units - codes) * _RESIDUAL_STEPS), -8, 7).astype(np.int16) + 8
    if dim % 2:
        residual = np.concatenate([residual, np.full((n, 1), 8, dtype=np.int16)], axis=1)
    nibbles = (residual[:, 0::2] | (residual[:, 1::2] << 4)).astype(np.uint8)
    scale_bytes = scales.astype("<f4").view(np.uint8).reshape(n, 4)
    return np.concatenate([scale_bytes, codes.astype(np.int8).view(np.uint8), nibbles], axis=1)


def _dequantized(raw: np.ndarray, dim: int) -> np.ndarray:
    """The float32 (n, dim) vectors of abstract rows held as a uint8 (n, stored_size) array."""
    scales = np.ascontiguousarray(raw[:, :4]).view("<f4").astype(np.float32)  # (n, 1)
    codes = raw[:, 4 : 4 + dim].view(np.int8).astype(np.float32)
    nibbles = raw[:, 4 + dim :]
    residual = np.empty((len(raw), 2 * nibbles.shape[1]), dtype=np.float32)
    residual[:, 0::2] = nibbles & 0x0F
    residual[:, 1::2] = nibbles >> 4
    return (codes + (residual[:, :dim] - 8) / _RESIDUAL_STEPS) * scales


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
