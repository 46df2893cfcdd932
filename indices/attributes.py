"""The attribute index of one tier's memories: for every leaf path of their contents, its values
sorted, so a condition finds its rows by binary search, at a cost that grows with the answer.

Each path keeps two sorted columns: numbers (as float64; ints beyond float range as +-inf) and
tokens (a 64-bit hash of a string, a bool, None, or an empty list or dict). Rows learnt since
the columns were last sorted wait in a short list that queries scan; past PENDING_SHARE of the
column they are merged in. Contents never change once stored, so a row is added once; a removed
row is dropped by the caller's alive mask (and by renumbering when the tier index compacts).

An answer is a superset: the exact test (indices/conditions.py) runs on the records read. A
memory whose contents give one path two different leaves (a top-level key "a.b" beside
{"a": {"b": ...}}) is kept aside and offered to every query, so no answer misses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from hashlib import blake2b
from typing import Any

import numpy as np

from indices.conditions import RANGE_OPS, Condition, is_number
from tiers.record import unpack_contents

MAX_ITEMS = 64  # list positions indexed per list
MAX_LEAVES = 512  # leaves indexed per memory
MAX_DEPTH = 32  # levels of nesting indexed
EXACT_INT = 2**53  # ints a float64 holds exactly
PENDING_MIN = 1024  # rows a column may hold unsorted at least
PENDING_SHARE = 0.125  # ... and as a share of its sorted rows
TOKEN_CACHE = 100_000  # strings whose hashes are kept

_NO_ROWS = np.empty(0, dtype=np.int64)
_EMPTY_LIST, _EMPTY_DICT = object(), object()


def _hash(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True)


_CONSTANT_TOKENS = {True: _hash(b"b\x00true"), False: _hash(b"b\x00false"), None: _hash(b"z\x00none")}
_EMPTY_TOKENS = {id(_EMPTY_LIST): _hash(b"l\x00[]"), id(_EMPTY_DICT): _hash(b"d\x00{}")}
_strings: dict[str, int] = {}


def token(value: Any) -> int | None:
    """The token of a non-numeric leaf (None for values that are not leaves)."""
    if type(value) is str:
        found = _strings.get(value)
        if found is None:
            if len(_strings) >= TOKEN_CACHE:
                _strings.clear()
            found = _strings[value] = _hash(b"s\x00" + value.encode("utf-8", "surrogatepass"))
        return found
    if value is True or value is False or value is None:
        return _CONSTANT_TOKENS[value]
    if value is _EMPTY_LIST or value is _EMPTY_DICT:
        return _EMPTY_TOKENS[id(value)]
    if type(value) is list and not value:
        return _EMPTY_TOKENS[id(_EMPTY_LIST)]
    if type(value) is dict and not value:
        return _EMPTY_TOKENS[id(_EMPTY_DICT)]
    return None


def number(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def leaves(contents: Any) -> tuple[dict[str, Any], bool]:
    """Every leaf of the contents by dot path (``position.0``, ``inventory.wood``), and whether
    the index may misjudge the memory, which then goes to every answer: a key with a dot in it
    (a filter may read it whole, or see through it), an int beyond float precision, more leaves
    or levels than are indexed."""
    found: dict[str, Any] = {}
    unclear = [False]

    def walk(node: Any, prefix: str, depth: int) -> None:
        kind = type(node)
        if kind is dict:
            if not node:
                found[prefix] = _EMPTY_DICT
                return
            if depth >= MAX_DEPTH:
                unclear[0] = True
                return
            for key, value in node.items():
                if type(key) is str:
                    if "." in key:
                        unclear[0] = True
                    walk(value, f"{prefix}.{key}" if prefix else key, depth + 1)
        elif kind is list:
            if not node:
                found[prefix] = _EMPTY_LIST
                return
            if depth >= MAX_DEPTH:
                unclear[0] = True
                return
            for position, value in enumerate(node[:MAX_ITEMS]):
                walk(value, f"{prefix}.{position}" if prefix else str(position), depth + 1)
        elif kind is str or kind is float or kind is bool or node is None or kind is int:
            if kind is int and not -EXACT_INT <= node <= EXACT_INT:
                unclear[0] = True
            if prefix:
                found[prefix] = node

    walk(contents, "", 0)
    if len(found) > MAX_LEAVES:
        unclear[0] = True
        found = dict(list(found.items())[:MAX_LEAVES])
    return found, unclear[0]


def indexable(condition: Condition) -> bool:
    """Whether the index can narrow by this condition (a list position it keeps, no negative
    positions, operands it has columns for)."""
    if len(condition.parts) > MAX_DEPTH:
        return False
    for part in condition.parts:
        if part.startswith("-") and part[1:].isdigit():
            return False
        if part.isdigit() and int(part) >= MAX_ITEMS:
            return False
    return True


class _Column:
    """One path's values of one kind, sorted, with the rows learnt since."""

    __slots__ = ("keys", "rows", "new_keys", "new_rows", "dtype")

    def __init__(self, dtype: Any):
        self.dtype = dtype
        self.keys = np.empty(0, dtype=dtype)
        self.rows = np.empty(0, dtype=np.int32)
        self.new_keys: list[Any] = []
        self.new_rows: list[int] = []

    def add(self, key: Any, row: int) -> None:
        self.new_keys.append(key)
        self.new_rows.append(row)

    def __len__(self) -> int:
        return len(self.keys) + len(self.new_keys)

    def nbytes(self) -> int:
        return self.keys.nbytes + self.rows.nbytes + 36 * len(self.new_keys)

    def between(self, low: Any, high: Any) -> np.ndarray:
        """Rows whose key is in [low, high]."""
        self._settle_if_long()
        start = np.searchsorted(self.keys, low, side="left")
        stop = np.searchsorted(self.keys, high, side="right")
        found = self.rows[start:stop].astype(np.int64)
        if self.new_keys:
            keys = np.asarray(self.new_keys, dtype=self.dtype)
            fresh = np.asarray(self.new_rows, dtype=np.int64)[(keys >= low) & (keys <= high)]
            if len(fresh):
                found = np.concatenate([found, fresh])
        return found

    def _settle_if_long(self) -> None:
        if len(self.new_keys) > max(PENDING_MIN, PENDING_SHARE * len(self.keys)):
            self.settle()

    def settle(self) -> None:
        if not self.new_keys:
            return
        keys = np.asarray(self.new_keys, dtype=self.dtype)
        rows = np.asarray(self.new_rows, dtype=np.int32)
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        at = np.searchsorted(self.keys, keys, side="right")
        self.keys, self.rows = np.insert(self.keys, at, keys), np.insert(self.rows, at, rows)
        self.new_keys, self.new_rows = [], []

    def renumbered(self, new_of_old: np.ndarray) -> _Column:
        self.settle()
        fresh = _Column(self.dtype)
        moved = new_of_old[self.rows]
        kept = moved >= 0
        fresh.keys, fresh.rows = self.keys[kept], moved[kept].astype(np.int32)
        return fresh


class AttributeIndex:
    def __init__(self, paths: Sequence[str] | None = None):
        """``paths``: index only these paths and what lies under them (None: every leaf)."""
        self.paths = None if paths is None else tuple(paths)
        self._numbers: dict[str, _Column] = {}
        self._tokens: dict[str, _Column] = {}
        self._unclear: list[int] = []  # rows the index may misjudge (see leaves): offered to every query

    def covers(self, path: str) -> bool:
        return self.paths is None or any(path == p or path.startswith(p + ".") for p in self.paths)

    def add(self, row: int, contents: bytes | None) -> None:
        """Index a new row's contents (msgpack bytes; None: nothing to index)."""
        if contents is None:
            return
        try:
            found, unclear = leaves(unpack_contents(contents))
        except (ValueError, TypeError):
            found, unclear = {}, True  # unreadable contents: left to the exact test
        if unclear:
            self._unclear.append(row)
        numbers, tokens, paths = self._numbers, self._tokens, self.paths
        for path, value in found.items():
            if paths is not None and not self.covers(path):
                continue
            if is_number(value):
                column = numbers.get(path)
                if column is None:
                    column = numbers[path] = _Column(np.float64)
                key = number(value)
                if key == key:  # NaN equals nothing and compares with nothing
                    column.add(key, row)
            else:
                column = tokens.get(path)
                if column is None:
                    column = tokens[path] = _Column(np.int64)
                column.add(token(value), row)

    def candidates(self, conditions: Iterable[Condition], every_row: Any) -> np.ndarray | None:
        """Sorted rows that may satisfy every condition the index can narrow by (a superset:
        the exact test decides), or None when it can narrow by none of them. ``every_row()``
        gives all rows, for a $ne."""
        answer: np.ndarray | None = None
        for condition in conditions:
            if not indexable(condition) or not self.covers(condition.path):
                continue
            rows = self._rows(condition, every_row)
            if rows is None:
                continue
            answer = rows if answer is None else np.intersect1d(answer, rows, assume_unique=True)
        if answer is None:
            return None
        if self._unclear:
            answer = np.union1d(answer, np.asarray(self._unclear, dtype=np.int64))
        return answer

    def _rows(self, condition: Condition, every_row: Any) -> np.ndarray | None:
        op, value, path = condition.op, condition.value, condition.path
        if op == "$eq":
            return _unique(self._equal(path, value))
        if op == "$in":
            found = [self._equal(path, v) for v in value]
            parts = [rows for rows in found if rows is not None]
            if len(parts) < len(found):
                return None
            return _unique(np.concatenate(parts)) if parts else _NO_ROWS
        if op == "$ne":  # the complement of an exact equality only
            exact = token(value) is not None or (
                is_number(value) and (type(value) is float or -EXACT_INT <= value <= EXACT_INT))
            equal = self._equal(path, value) if exact else None
            if equal is None:
                return None
            return np.setdiff1d(every_row(), equal)
        if op in RANGE_OPS:
            column = self._numbers.get(path)
            if column is None:
                return _NO_ROWS
            key = number(value)
            low, high = (key, math.inf) if op in ("$gt", "$gte") else (-math.inf, key)
            return _unique(column.between(low, high))  # bounds included: the exact test is strict
        return None

    def _equal(self, path: str, value: Any) -> np.ndarray | None:
        """Rows whose leaf at ``path`` may equal ``value``; None when the index cannot tell
        (a value with no leaves)."""
        if is_number(value):
            column = self._numbers.get(path)
            if column is None:
                return _NO_ROWS
            key = number(value)
            return column.between(key, key) if key == key else _NO_ROWS
        wanted = token(value)
        if wanted is not None:
            column = self._tokens.get(path)
            return _NO_ROWS if column is None else column.between(wanted, wanted)
        if isinstance(value, (dict, list, tuple)):  # a container: every one of its leaves
            inner, _ = leaves(list(value) if isinstance(value, tuple) else value)
            answer: np.ndarray | None = None
            for sub, leaf in inner.items():
                full = f"{path}.{sub}"
                if full.count(".") >= MAX_DEPTH or not self.covers(full):
                    continue
                rows = self._equal(full, leaf)
                if rows is None:
                    continue
                rows = np.unique(rows)
                answer = rows if answer is None else np.intersect1d(answer, rows, assume_unique=True)
            return answer
        return None

    def renumbered(self, new_of_old: np.ndarray) -> AttributeIndex:
        """The same index over renumbered rows (``new_of_old[row]``; -1 for a dropped row)."""
        fresh = AttributeIndex(self.paths)
        fresh._numbers = {p: c.renumbered(new_of_old) for p, c in self._numbers.items()}
        fresh._tokens = {p: c.renumbered(new_of_old) for p, c in self._tokens.items()}
        unclear = new_of_old[np.asarray(self._unclear, dtype=np.int64)] if self._unclear else _NO_ROWS
        fresh._unclear = [int(r) for r in unclear if r >= 0]
        return fresh

    def nbytes(self) -> int:
        columns = [*self._numbers.values(), *self._tokens.values()]
        return sum(c.nbytes() for c in columns) + 120 * len(columns) + 8 * len(self._unclear)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as flat arrays (indices/snapshot.py)."""
        out: dict[str, np.ndarray] = {"attr_unclear": np.asarray(self._unclear, dtype=np.int64)}
        for kind, columns in (("num", self._numbers), ("tok", self._tokens)):
            for column in columns.values():
                column.settle()
            names = list(columns)
            out[f"attr_{kind}_paths"] = np.array(names, dtype=str)
            out[f"attr_{kind}_sizes"] = np.array([len(columns[p].keys) for p in names], dtype=np.int64)
            out[f"attr_{kind}_keys"] = np.concatenate([columns[p].keys for p in names]) if names else \
                np.empty(0, dtype=np.float64 if kind == "num" else np.int64)
            out[f"attr_{kind}_rows"] = np.concatenate([columns[p].rows for p in names]) if names else \
                np.empty(0, dtype=np.int32)
        return out

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._unclear = arrays["attr_unclear"].tolist()
        for kind, columns, dtype in (("num", self._numbers, np.float64), ("tok", self._tokens, np.int64)):
            start = 0
            for path, size in zip(arrays[f"attr_{kind}_paths"].tolist(), arrays[f"attr_{kind}_sizes"].tolist()):
                column = columns[path] = _Column(dtype)
                column.keys = arrays[f"attr_{kind}_keys"][start : start + size].astype(dtype)
                column.rows = arrays[f"attr_{kind}_rows"][start : start + size].astype(np.int32)
                start += size


def _unique(rows: np.ndarray | None) -> np.ndarray | None:
    return None if rows is None else np.unique(rows)
