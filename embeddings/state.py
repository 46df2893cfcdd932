"""A deterministic state encoder: a JSON-like dict to a unit float32 vector, no model needed.

Feature hashing over leaf paths (``inventory.wood``, ``position[0]``, ``visible[]``). Every leaf
adds a fixed amount of weight, so no single key, however large its number, dominates:

- a *presence* component per path (the constant bias: two states with the same keys share it, so
  a lone number's magnitude still moves the vector's direction after normalization);
- a *value* component: a number is squashed with signed ``log1p`` and spread over three
  neighbouring hashed bins with Gaussian weights (soft binning), so the dot product of two values
  falls off smoothly with their difference on the log scale (10 vs 12 stay near, 10 vs 1000 do
  not); a string, bool or None is one hashed token; a list of strings is a bag of tokens; a list
  of other values is indexed (``position[0]``, ``position[1]``).

Each hashed slot also gets a hashed sign, so collisions cancel in expectation. Slots come from
``hashlib.blake2b`` (never Python's per-process randomized ``hash()``), cached per encoder, so an
encoding is identical across processes, runs and machines.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from hashlib import blake2b
from numbers import Real

import numpy as np

MIN_DIM = 8
MAX_DEPTH = 32
# Share of a leaf's squared weight carried by its presence component; the rest is its value.
PRESENCE_SHARE = 0.3
# Width of a value's Gaussian bump, in bins (one bin = one unit of signed log1p).
BUMP_SIGMA = 0.7
# Entries in the slot cache before it starts over (~15 MB): a stream of distinct paths or strings
# (ids, free text) must not grow memory without limit.
CACHE_LIMIT = 100_000
SMALL_INT = 1024  # ints below this in magnitude (counts, coordinates) have their bins cached

_PRESENCE = math.sqrt(PRESENCE_SHARE)
_VALUE = math.sqrt(1.0 - PRESENCE_SHARE)
_INV_TWO_SIGMA_SQ = 1.0 / (2.0 * BUMP_SIGMA * BUMP_SIGMA)
_NEIGHBOUR = math.exp(-_INV_TWO_SIGMA_SQ)  # weight of a bin one step from the value's centre bin
_INF = float("inf")
_log1p, _exp, _sqrt = math.log1p, math.exp, math.sqrt  # module globals: one lookup, not two, per leaf


class StateEncoder:
    """Deterministic feature-hashing encoder: JSON-like dict -> unit float32 vector."""

    def __init__(self, dim: int = 128):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < MIN_DIM:
            raise ValueError(f"StateEncoder dim must be an int >= {MIN_DIM}, got {dim!r}")
        self.dim = dim
        self._paths: dict[str, list] = {}
        self._cached = 0

    def encode(self, state) -> np.ndarray:
        """The state's vector: shape (dim,), float32, L2 norm 1."""
        acc = [0.0] * self.dim
        if type(state) is dict or isinstance(state, Mapping):
            if state:
                self._add_mapping(acc, state, "", 0)
            else:
                self._add_token(acc, "", "\x00{}")
        else:
            self._add_value(acc, state, "", 0)
        vector = np.fromiter(acc, np.float32, self.dim)
        norm = math.sqrt(float(np.dot(vector, vector)))
        if norm == 0.0:  # every feature cancelled in the hashed slots: astronomically rare
            vector[self._hash("e", "")[0]] = norm = 1.0
        vector *= 1.0 / norm
        return vector

    def encode_many(self, states: Iterable) -> np.ndarray:
        """One row per state: shape (n, dim), float32; (0, dim) for no states."""
        rows = [self.encode(state) for state in states]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows)

    # -- walking the value ------------------------------------------------------------------
    def _add_mapping(self, acc: list[float], mapping: Mapping, prefix: str, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise ValueError(f"state nested deeper than {MAX_DEPTH} levels at {prefix or '<root>'!r}")
        paths = self._paths
        for key, value in mapping.items():
            if type(key) is not str:
                if isinstance(key, (str, int, float)) or key is None:
                    key = str(key)
                else:
                    raise TypeError(
                        f"unsupported key of type {type(key).__name__!r} at {prefix or '<root>'!r}"
                    )
            path = f"{prefix}.{key}" if prefix else key
            # The commonest leaves (small ints, strings, finite floats) are _add_number and
            # _add_token written out, same additions in the same order: a call per leaf was a
            # third of a state's encoding.
            kind = type(value)
            if kind is int and -SMALL_INT < value < SMALL_INT:
                entry = paths.get(path) or self._new_path(path)
                acc[entry[0]] += entry[1]
                low, w_low, mid, w_mid, high, w_high = entry[4].get(value) or self._new_spread(path, entry, value)
                acc[low] += w_low
                acc[mid] += w_mid
                acc[high] += w_high
            elif kind is str:
                entry = paths.get(path) or self._new_path(path)
                acc[entry[0]] += entry[1]
                tokens = entry[3]
                slot, sign = tokens.get(value) or self._new_token(path, tokens, value)
                acc[slot] += sign * _VALUE
            elif kind is float and -_INF < value < _INF:  # _spread's arithmetic, written out too
                squashed = _log1p(value) if value >= 0 else -_log1p(-value)
                entry = paths.get(path) or self._new_path(path)
                acc[entry[0]] += entry[1]
                centre = round(squashed)
                tilt = _exp(2.0 * (squashed - centre) * _INV_TWO_SIGMA_SQ)
                w_low = _NEIGHBOUR / tilt
                w_high = _NEIGHBOUR * tilt
                scale = _VALUE / _sqrt(w_low * w_low + 1.0 + w_high * w_high)
                bins = entry[2]
                low, low_sign, mid, mid_sign, high, high_sign = bins.get(centre) or self._new_bins(path, bins, centre)
                acc[low] += low_sign * w_low * scale
                acc[mid] += mid_sign * scale
                acc[high] += high_sign * w_high * scale
            elif kind is float or kind is int:
                self._add_number(acc, path, value)
            elif kind is dict and value:
                self._add_mapping(acc, value, path, depth + 1)
            elif kind is list:
                self._add_sequence(acc, value, path, depth + 1)
            else:
                self._add_value(acc, value, path, depth + 1)

    def _add_value(self, acc: list[float], value, path: str, depth: int) -> None:
        kind = type(value)
        if kind is float or kind is int:
            self._add_number(acc, path, value)
        elif kind is str:
            self._add_token(acc, path, value)
        elif value is None or kind is bool:
            self._add_token(acc, path, "\x00" + repr(value))
        elif kind is dict or isinstance(value, Mapping):
            if value:
                self._add_mapping(acc, value, path, depth)
            else:
                self._add_token(acc, path, "\x00{}")
        elif kind is list or isinstance(value, (list, tuple)):
            self._add_sequence(acc, value, path, depth)
        elif isinstance(value, np.bool_):
            self._add_token(acc, path, "\x00" + repr(bool(value)))
        elif isinstance(value, Real):  # numpy scalars, Fraction
            self._add_number(acc, path, float(value))
        else:
            raise TypeError(
                f"unsupported value of type {kind.__name__!r} at {path or '<root>'!r} "
                "(a state holds numbers, strings, bools, None, dicts and lists)"
            )

    def _add_sequence(self, acc: list[float], items, path: str, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise ValueError(f"state nested deeper than {MAX_DEPTH} levels at {path!r}")
        if not items:
            self._add_token(acc, path, "\x00[]")
            return
        strings = [item for item in items if type(item) is str]
        if strings:  # a bag of tokens: order-free, the whole bag weighs one leaf
            bag = f"{path}[]"
            entry = self._paths.get(bag) or self._new_path(bag)
            acc[entry[0]] += entry[1]
            weight = _VALUE / math.sqrt(len(strings))
            tokens = entry[3]
            for token in strings:
                slot, sign = tokens.get(token) or self._new_token(bag, tokens, token)
                acc[slot] += sign * weight
        if len(strings) != len(items):
            for index, item in enumerate(items):
                if type(item) is not str:
                    self._add_value(acc, item, f"{path}[{index}]", depth + 1)

    # -- leaves -----------------------------------------------------------------------------
    def _add_number(self, acc: list[float], path: str, number) -> None:
        if type(number) is int and -SMALL_INT < number < SMALL_INT:
            # counts and coordinates repeat: their three bin contributions are kept per path
            entry = self._paths.get(path) or self._new_path(path)
            acc[entry[0]] += entry[1]
            spread = entry[4].get(number) or self._new_spread(path, entry, number)
        else:
            try:
                squashed = math.log1p(number) if number >= 0 else -math.log1p(-number)
            except OverflowError:  # an int beyond float range: log() takes big ints
                squashed = math.log(abs(number)) if number > 0 else -math.log(abs(number))
            if not math.isfinite(squashed):
                self._add_token(acc, path, "\x00" + repr(float(number)))
                return
            entry = self._paths.get(path) or self._new_path(path)
            acc[entry[0]] += entry[1]
            spread = self._spread(path, entry[2], squashed)
        low, w_low, mid, w_mid, high, w_high = spread
        acc[low] += w_low
        acc[mid] += w_mid
        acc[high] += w_high

    def _spread(self, path: str, bins: dict, squashed: float) -> tuple[int, float, int, float, int, float]:
        """(slot, signed weight) of the three bins nearest a squashed value."""
        centre = round(squashed)
        # Gaussian weights of the three bins nearest the value; their common factor cancels in
        # the normalization below, which leaves one exp() per number.
        tilt = math.exp(2.0 * (squashed - centre) * _INV_TWO_SIGMA_SQ)
        w_low = _NEIGHBOUR / tilt
        w_high = _NEIGHBOUR * tilt
        scale = _VALUE / math.sqrt(w_low * w_low + 1.0 + w_high * w_high)
        low, low_sign, mid, mid_sign, high, high_sign = bins.get(centre) or self._new_bins(path, bins, centre)
        return low, low_sign * w_low * scale, mid, mid_sign * scale, high, high_sign * w_high * scale

    def _new_spread(self, path: str, entry: list, number: int) -> tuple[int, float, int, float, int, float]:
        squashed = math.log1p(number) if number >= 0 else -math.log1p(-number)
        spread = self._spread(path, entry[2], squashed)
        self._count_cached()
        entry[4][number] = spread
        return spread

    def _add_token(self, acc: list[float], path: str, token: str) -> None:
        """A categorical value (a string, bool, None or empty container) at ``path``."""
        entry = self._paths.get(path) or self._new_path(path)
        acc[entry[0]] += entry[1]
        tokens = entry[3]
        slot, sign = tokens.get(token) or self._new_token(path, tokens, token)
        acc[slot] += sign * _VALUE

    # -- the slot cache: path -> [presence slot, signed presence weight,
    #    {centre bin: (slot, sign) of it and its two neighbours}, {token: (slot, sign)},
    #    {small int: its three bins' (slot, signed weight)}]
    def _new_path(self, path: str) -> list:
        slot, sign = self._hash("p", path)
        entry = [slot, sign * _PRESENCE, {}, {}, {}]
        self._paths[path] = entry
        return entry

    def _new_bins(self, path: str, bins: dict, centre: int) -> tuple[int, float, int, float, int, float]:
        """(slot, sign) of the bins centre - 1, centre and centre + 1 at ``path``, kept by centre."""
        low, mid, high = (self._hash("n", f"{path}\x00{n}") for n in (centre - 1, centre, centre + 1))
        bins[centre] = found = (*low, *mid, *high)
        return found

    def _new_token(self, path: str, tokens: dict, token: str) -> tuple[int, float]:
        tokens[token] = found = self._hash("s", f"{path}\x00{token}")
        return found

    def _count_cached(self) -> None:
        """Count a new cache entry; past CACHE_LIMIT the cache starts over."""
        self._cached += 1
        if self._cached > CACHE_LIMIT:
            self._paths.clear()
            self._cached = 0

    def _hash(self, kind: str, feature: str) -> tuple[int, float]:
        """A feature's (slot, sign) from a stable 64-bit hash; ``kind`` keeps feature kinds apart.

        Called on every cache miss, so it also keeps the cache within CACHE_LIMIT entries.
        """
        self._count_cached()
        data = f"{kind}\x00{feature}".encode("utf-8", "surrogatepass")
        digest = int.from_bytes(blake2b(data, digest_size=8).digest(), "little")
        return digest % self.dim, (1.0 if digest >> 63 else -1.0)
