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
from collections.abc import Iterable, Mapping, Sequence
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
NO_CONTENTS, UNREADABLE = object(), object()  # what contents_of gives for no bytes, and for bytes msgpack refuses


def contents_of(blob: bytes | None) -> Any:
    """Contents as the indices read them."""
    if blob is None:
        return NO_CONTENTS
    try:
        return unpack_contents(blob)
    except (ValueError, TypeError):
        return UNREADABLE


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
        if kind is dict or kind is list:
            if not node:
                found[prefix] = _EMPTY_DICT if kind is dict else _EMPTY_LIST
                return
            if depth >= MAX_DEPTH:
                unclear[0] = True
                return
            items = node.items() if kind is dict else enumerate(node[:MAX_ITEMS])
            for key, value in items:
                if type(key) is str:
                    unclear[0] = unclear[0] or "." in key
                elif kind is dict:
                    continue  # a dot path never reaches a key that is not a str
                walk(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
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


def covered(path: str, paths: Sequence[str] | None) -> bool:
    """Whether an index of ``paths`` (None: every leaf) keeps ``path``."""
    return paths is None or any(path == p or path.startswith(p + ".") for p in paths)


def state_leaves(state: Any, paths: Sequence[str] | None) -> tuple[tuple[str, Any], ...]:
    """The leaves of a query state that a state distance reads: those an index of ``paths``
    keeps, NaN left out (it equals nothing), in path order."""
    found, _ = leaves(state)
    return tuple(sorted((path, value) for path, value in found.items()
                        if path and covered(path, paths) and value == value))


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


ABSENT_TOKEN = np.iinfo(np.int64).min  # a token column's mark, by row, for a row without a token there


class _Column:
    """One path's values of one kind, sorted, with the rows learnt since; and, once a state
    query asked for it, every row's value in row order (kept up to date as rows arrive)."""

    __slots__ = ("keys", "rows", "new_keys", "new_rows", "dtype", "_fresh", "_view", "_placed")

    def __init__(self, dtype: Any):
        self.dtype = dtype
        self.keys = np.empty(0, dtype=dtype)
        self.rows = np.empty(0, dtype=np.int32)
        self.new_keys: list[Any] = []
        self.new_rows: list[int] = []
        self._fresh: tuple[int, np.ndarray, np.ndarray] | None = None  # the waiting rows as arrays, by count
        self._view: np.ndarray | None = None  # the value by row (NaN or ABSENT_TOKEN: none)
        self._placed = 0  # waiting rows already in the view

    def add(self, key: Any, row: int) -> None:
        self.new_keys.append(key)
        self.new_rows.append(row)

    def __len__(self) -> int:
        return len(self.keys) + len(self.new_keys)

    def nbytes(self) -> int:
        view = 0 if self._view is None else self._view.nbytes
        return self.keys.nbytes + self.rows.nbytes + 36 * len(self.new_keys) + view

    def span(self, low: Any, high: Any) -> tuple[int, int, np.ndarray]:
        """Where keys in [low, high] lie: (start, stop) among the sorted, and the rows among
        those learnt since (in row order)."""
        self.settle_if_long()
        start = int(np.searchsorted(self.keys, low, side="left"))
        stop = int(np.searchsorted(self.keys, high, side="right"))
        keys, rows = self._waiting()
        return start, stop, rows[(keys >= low) & (keys <= high)] if len(keys) else _NO_ROWS

    def _waiting(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys and rows learnt since the last sort, as arrays."""
        if not self.new_keys:
            return np.empty(0, dtype=self.dtype), _NO_ROWS
        if self._fresh is None or self._fresh[0] != len(self.new_keys):  # rows only append: a count names them
            self._fresh = (len(self.new_keys), np.asarray(self.new_keys, dtype=self.dtype),
                           np.asarray(self.new_rows, dtype=np.int64))
        return self._fresh[1], self._fresh[2]

    def extent(self) -> tuple[float, float] | None:
        """The smallest and largest finite number in the column (None: it holds none)."""
        self.settle_if_long()
        keys = self.keys
        start, stop = np.searchsorted(keys, -math.inf, side="right"), np.searchsorted(keys, math.inf, side="left")
        low, high = (float(keys[start]), float(keys[stop - 1])) if start < stop else (math.inf, -math.inf)
        waiting, _ = self._waiting()
        waiting = waiting[np.isfinite(waiting)]
        if len(waiting):
            low, high = min(low, float(waiting.min())), max(high, float(waiting.max()))
        return (low, high) if low <= high else None

    def by_row(self, size: int) -> np.ndarray:
        """Every row's key below ``size`` (every row the column knows lies below it), NaN or
        ABSENT_TOKEN for a row without one: built once, then only the rows learnt since are placed."""
        view = self._view
        if view is None or len(view) < size:
            grown = np.full(max(size, 2 * len(view)) if view is not None else size,
                            np.nan if self.dtype == np.float64 else ABSENT_TOKEN, dtype=self.dtype)
            if view is None:
                grown[self.rows] = self.keys
                self._placed = 0
            else:
                grown[: len(view)] = view
            self._view = view = grown
        self._place()
        return view[:size]

    def _place(self) -> None:
        if self._view is not None and self._placed < len(self.new_keys):
            keys, rows = self._waiting()
            self._view[rows[self._placed :]] = keys[self._placed :]
            self._placed = len(self.new_keys)

    def settle_if_long(self) -> None:
        if len(self.new_keys) > max(PENDING_MIN, PENDING_SHARE * len(self.keys)):
            self.settle()

    def settle(self) -> None:
        if not self.new_keys:
            return
        self._place()
        self._placed = 0
        keys = np.asarray(self.new_keys, dtype=self.dtype)
        rows = np.asarray(self.new_rows, dtype=np.int32)
        order = np.argsort(keys, kind="stable")
        keys, rows = keys[order], rows[order]
        at = np.searchsorted(self.keys, keys, side="right")
        self.keys, self.rows = np.insert(self.keys, at, keys), np.insert(self.rows, at, rows)
        self.new_keys, self.new_rows, self._fresh = [], [], None

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
        self._left = MAX_LEAVES  # leaves the row being added may still add
        self._added = 0

    def covers(self, path: str) -> bool:
        return covered(path, self.paths)

    def add(self, row: int, data: Any) -> None:
        """Index a new row's contents (as read back; NO_CONTENTS: nothing to index; UNREADABLE:
        left to the exact test)."""
        if data is NO_CONTENTS:
            return
        if data is UNREADABLE:
            self._unclear.append(row)
            return
        self._left = MAX_LEAVES
        if self._walk(data, "", 0, row):
            self._unclear.append(row)
        self._added += 1
        if self._added % PENDING_MIN == 0:  # waiting rows cost ~10x a sorted one: sort the long queues in
            for column in (*self._numbers.values(), *self._tokens.values()):
                column.settle_if_long()

    def _walk(self, node: Any, prefix: str, depth: int, row: int) -> bool:
        """Add the leaves under ``node`` (what leaves() finds, straight into the columns: every
        store's memory passes here once per process); True when the index may misjudge the row."""
        kind = type(node)
        if kind is dict:
            items: Iterable[tuple[Any, Any]] = node.items()
        elif kind is list:
            items = enumerate(node[:MAX_ITEMS])
        else:
            return False  # contents that are one value: no dot path reaches it
        if not node:
            return self._empty(prefix, _EMPTY_DICT if kind is dict else _EMPTY_LIST, row) if prefix else False
        if depth >= MAX_DEPTH:
            return True
        unclear = False
        numbers, tokens, paths = self._numbers, self._tokens, self.paths
        for key, value in items:
            if type(key) is str:
                if "." in key:
                    unclear = True
            elif kind is dict:
                continue  # a dot path never reaches a key that is not a str
            path = f"{prefix}.{key}" if prefix else str(key)
            leaf = type(value)
            if leaf is str or leaf is bool or value is None:
                if paths is not None and not self.covers(path):
                    continue
                self._left -= 1
                if self._left < 0:
                    return True
                column = tokens.get(path)
                if column is None:
                    column = tokens[path] = _Column(np.int64)
                column.new_keys.append(token(value))
                column.new_rows.append(row)
            elif leaf is int or leaf is float:
                if paths is not None and not self.covers(path):
                    continue
                self._left -= 1
                if self._left < 0:
                    return True
                if leaf is int:
                    if not -EXACT_INT <= value <= EXACT_INT:
                        unclear = True
                    value = number(value)
                elif value != value:
                    continue  # NaN equals nothing and compares with nothing
                column = numbers.get(path)
                if column is None:
                    column = numbers[path] = _Column(np.float64)
                column.new_keys.append(value)
                column.new_rows.append(row)
            elif leaf is dict or leaf is list:
                unclear = self._walk(value, path, depth + 1, row) or unclear
                if self._left < 0:
                    return True
        return unclear

    def _empty(self, path: str, empty: Any, row: int) -> bool:
        """An empty dict or list at ``path``: a token of its own (``{"tags": []}`` finds it)."""
        if self.paths is not None and not self.covers(path):
            return False
        self._left -= 1
        if self._left < 0:
            return True
        column = self._tokens.get(path)
        if column is None:
            column = self._tokens[path] = _Column(np.int64)
        column.add(token(empty), row)
        return False

    def candidates(self, conditions: Iterable[Condition], every_row: Any) -> np.ndarray | None:
        """Sorted rows that may satisfy every condition the index can narrow by (a superset:
        the exact test decides), or None when it can narrow by none of them. ``every_row()``
        gives all rows, for a $ne. The smallest condition's rows are the start; an equality
        then keeps those of them in its sorted run (a binary search per row), a range or a
        $ne only when its rows are few enough to be worth listing."""
        usable = [c for c in conditions if indexable(c) and self.covers(c.path)]
        bounds: dict[str, list[float]] = {}  # the ranges on one path, as one interval
        for condition in usable:
            if condition.op in RANGE_OPS:
                low, high = bounds.setdefault(condition.path, [-math.inf, math.inf])
                key = number(condition.value)
                bounds[condition.path] = [max(low, key), high] if condition.op in ("$gt", "$gte") else [low, min(high, key)]
        found = [self._found(c, every_row) for c in usable if c.op not in RANGE_OPS]
        # bounds included: the exact test is strict
        found += [_Run(self._numbers.get(path), low, high) for path, (low, high) in bounds.items()]
        answer = _all([f for f in found if f is not None])
        if answer is None:
            return None
        if self._unclear:
            answer = np.union1d(answer, np.asarray(self._unclear, dtype=np.int64))
        return answer

    def _found(self, condition: Condition, every_row: Any) -> _Found | None:
        op, value, path = condition.op, condition.value, condition.path
        if op == "$eq":
            return self._equal(path, value)
        if op == "$in":
            found = [self._equal(path, v) for v in value]
            if any(f is None for f in found):
                return None
            return _AnyOf(found)  # type: ignore[arg-type]
        if op == "$ne":  # the complement of an exact equality only
            exact = token(value) is not None or (
                is_number(value) and (type(value) is float or -EXACT_INT <= value <= EXACT_INT))
            equal = self._equal(path, value) if exact else None
            return None if equal is None else _Not(equal, every_row)
        return None

    def _equal(self, path: str, value: Any) -> _Found | None:
        """Rows whose leaf at ``path`` may equal ``value``; None when the index cannot tell
        (a container with no leaves)."""
        if is_number(value):
            key = number(value)
            return _Run(self._numbers.get(path), key, key) if key == key else _Run(None, 0, 0)
        wanted = token(value)
        if wanted is not None:
            return _Run(self._tokens.get(path), wanted, wanted)
        if isinstance(value, (dict, list, tuple)):  # a container: every one of its leaves
            inner, _ = leaves(list(value) if isinstance(value, tuple) else value)
            parts = [self._equal(f"{path}.{sub}", leaf) for sub, leaf in inner.items()
                     if f"{path}.{sub}".count(".") < MAX_DEPTH and self.covers(f"{path}.{sub}")]
            return _AllOf([p for p in parts if p is not None]) if any(p is not None for p in parts) else None
        return None

    # -- likeness of states: a distance over the leaves of a query state ------------------------
    def extents(self, paths: Iterable[str]) -> dict[str, tuple[float, float]]:
        """(smallest, largest) finite number seen at each of ``paths`` that holds any."""
        found = {}
        for path in paths:
            column = self._numbers.get(path)
            extent = None if column is None else column.extent()
            if extent is not None:
                found[path] = extent
        return found

    def distances(self, wanted: Sequence[tuple[str, Any]], spreads: Mapping[str, float], size: int,
                  rows: np.ndarray | None) -> np.ndarray:
        """The squared distance from a state's leaves (``wanted``: state_leaves) to each of
        ``rows`` (None: every row below ``size``), over those leaves' paths: a number adds its
        difference scaled by the path's spread (``spreads``: largest - smallest seen), a
        categorical value (string, bool, None, an empty list or dict) adds 0 when equal and 2
        when not (one-hot vectors), and a row without the leaf adds 1."""
        total = np.zeros(size if rows is None else len(rows))
        for path, value in wanted:
            numeric = type(value) is int or type(value) is float
            column = (self._numbers if numeric else self._tokens).get(path)
            if column is None:
                total += 1.0
                continue
            keys = column.by_row(size)
            if rows is not None:
                keys = keys[rows]
            if numeric:
                with np.errstate(invalid="ignore", over="ignore"):
                    gap = np.abs(keys - number(value))
                    spread = spreads.get(path, 0.0)
                    part = np.square(gap / spread) if spread > 0 else (gap > 0).astype(np.float64)
                part[np.isnan(gap)] = 1.0  # no number there (or two infinities: told apart below)
                if not math.isfinite(number(value)):
                    part[keys == number(value)] = 0.0
                total += part
            else:
                mark = token(value)
                total += np.where(keys == mark, 0.0, np.where(keys == ABSENT_TOKEN, 1.0, 2.0))
        return total

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


# -- the rows of one condition, listed only when that is worth it ---------------------------------
LIST_RATIO = 8  # a range lists its rows while they are at most this many times the rows kept so far


class _Found:
    size: int  # how many rows, at most
    point = False  # rows sorted within one run of equal keys: membership by binary search

    def rows(self) -> np.ndarray:
        """The rows, sorted and unique."""
        raise NotImplementedError

    def keep(self, rows: np.ndarray) -> np.ndarray:
        """Those of ``rows`` (sorted) that are among this condition's rows."""
        return _intersect(rows, self.rows())


class _Run(_Found):
    """The rows whose key lies in [low, high] in one column."""

    def __init__(self, column: _Column | None, low: Any, high: Any):
        self.column = column
        if column is None:
            self.start = self.stop = 0
            self.fresh = _NO_ROWS
        else:
            self.start, self.stop, self.fresh = column.span(low, high)
        self.size = self.stop - self.start + len(self.fresh)
        self.point = low == high  # one key: its rows are in row order (rows only grow)

    def rows(self) -> np.ndarray:
        if self.column is None:
            return _NO_ROWS
        rows = self.column.rows[self.start : self.stop].astype(np.int64)
        if len(self.fresh):
            rows = np.concatenate([rows, self.fresh])
        return _sorted_unique(rows, assume_sorted=self.point)

    def keep(self, rows: np.ndarray) -> np.ndarray:
        if not self.point or self.column is None:
            return super().keep(rows)
        run = self.column.rows[self.start : self.stop]
        at = np.searchsorted(run, rows)
        inside = run[np.minimum(at, max(len(run) - 1, 0))] == rows if len(run) else np.zeros(len(rows), dtype=bool)
        if len(self.fresh):
            inside |= np.isin(rows, self.fresh)
        return rows[inside]


class _AnyOf(_Found):
    def __init__(self, parts: list[_Found]):
        self.parts = parts
        self.size = sum(p.size for p in parts)

    def rows(self) -> np.ndarray:
        listed = [p.rows() for p in self.parts if p.size]
        return _sorted_unique(np.concatenate(listed)) if listed else _NO_ROWS

    def keep(self, rows: np.ndarray) -> np.ndarray:
        if all(p.point for p in self.parts):
            return np.unique(np.concatenate([p.keep(rows) for p in self.parts]))
        return super().keep(rows)


class _AllOf(_Found):
    def __init__(self, parts: list[_Found]):
        self.parts = parts
        self.size = min(p.size for p in parts)

    def rows(self) -> np.ndarray:
        return _all(self.parts)  # type: ignore[return-value]

    def keep(self, rows: np.ndarray) -> np.ndarray:
        for part in self.parts:
            rows = part.keep(rows)
        return rows


class _Not(_Found):
    def __init__(self, equal: _Found, every_row: Any):
        self.equal, self.every_row = equal, every_row
        self.size = 2**62  # nearly every row, as a rule: listed last, if at all

    def rows(self) -> np.ndarray:
        return np.setdiff1d(self.every_row(), self.equal.rows(), assume_unique=True)

    def keep(self, rows: np.ndarray) -> np.ndarray:
        return np.setdiff1d(rows, self.equal.keep(rows), assume_unique=True)


def _all(found: list[_Found]) -> np.ndarray | None:
    """The rows every one of ``found`` may hold (None for no conditions), smallest first."""
    if not found:
        return None
    found = sorted(found, key=lambda f: f.size)
    answer = found[0].rows()
    for other in found[1:]:
        if not len(answer):
            break
        if other.point or isinstance(other, (_Not, _AnyOf)) or other.size <= LIST_RATIO * len(answer):
            answer = other.keep(answer)
        # else: a wide range; the exact test on the few rows kept is cheaper than listing it
    return answer


def _intersect(small: np.ndarray, sorted_rows: np.ndarray) -> np.ndarray:
    """Rows of ``small`` (sorted) also in ``sorted_rows`` (sorted, unique)."""
    if not len(small) or not len(sorted_rows):
        return _NO_ROWS
    at = np.minimum(np.searchsorted(sorted_rows, small), len(sorted_rows) - 1)
    return small[sorted_rows[at] == small]


def _sorted_unique(rows: np.ndarray, assume_sorted: bool = False) -> np.ndarray:
    if len(rows) > 1 and (not assume_sorted or bool(np.any(rows[1:] <= rows[:-1]))):
        if assume_sorted:  # a row twice in one run (a key with dots walked two ways): rare
            return np.unique(rows)
        rows = np.sort(rows)
        if bool(np.any(rows[1:] == rows[:-1])):
            return np.unique(rows)
    return rows
