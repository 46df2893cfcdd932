"""What an attribute condition means on a memory's contents: dot paths, operators, exact tests.

A filter maps dot paths to a wanted value (equality) or to operators, spelled as LangGraph's
store filter spells them: ``{"outcome": "success", "reward": {"$gte": 5}, "goal": {"$in": [...]}}``.

    $eq $ne       equal / not equal (a memory without the path is "not equal")
    $gt $gte $lt $lte   on numbers (a bool is not a number; a memory without a number there fails)
    $in           equal to one of a list

A path reaches into dicts by key and into lists by position (``position.0``, ``position.-1``);
a top-level key that itself contains dots wins over the nested reading. Equality never confuses
a bool with a number (True is not 1 here), and 1 equals 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from tiers.errors import InvalidInputError

MISSING = object()
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
OPS = ("$eq", "$ne", "$in", *RANGE_OPS)
MAX_IN = 1024  # values one $in may list


class Condition(NamedTuple):
    path: str
    op: str
    value: Any
    parts: tuple[str, ...]  # the path split at its dots


def parse(filters: Mapping[str, Any]) -> tuple[Condition, ...]:
    """The conditions of a filter (already checked to be a non-empty dict of str paths);
    InvalidInputError on an unknown operator or a value an operator cannot take."""
    found: list[Condition] = []
    for path, wanted in filters.items():
        parts = tuple(path.split("."))
        if isinstance(wanted, Mapping) and wanted and any(isinstance(k, str) and k.startswith("$") for k in wanted):
            plain = [k for k in wanted if not (isinstance(k, str) and k.startswith("$"))]
            if plain:
                raise InvalidInputError(f"filter on {path!r} mixes operators with plain keys {plain[:3]}: "
                                        "write {'$eq': {...}} to match a dict that has $ keys")
            for op, value in wanted.items():
                found.append(Condition(path, _checked(path, op, value), _operand(op, value), parts))
        else:
            found.append(Condition(path, "$eq", wanted, parts))
    return tuple(found)


def _checked(path: str, op: str, value: Any) -> str:
    if op not in OPS:
        raise InvalidInputError(f"unknown operator {op!r} on {path!r}; one of {', '.join(OPS)}")
    if op in RANGE_OPS and not is_number(value):
        raise InvalidInputError(f"{op} on {path!r} takes a number, got {type(value).__name__}")
    if op in RANGE_OPS and math.isnan(value):
        raise InvalidInputError(f"{op} on {path!r} takes a number, got NaN")
    if op == "$in":
        if not isinstance(value, (list, tuple)) or not value:
            raise InvalidInputError(f"$in on {path!r} takes a non-empty list of values")
        if len(value) > MAX_IN:
            raise InvalidInputError(f"$in on {path!r} lists {len(value)} values; at most {MAX_IN}")
    return op


def _operand(op: str, value: Any) -> Any:
    return tuple(value) if op == "$in" else value


def is_number(value: Any) -> bool:
    return type(value) is not bool and isinstance(value, (int, float))


def lookup(contents: Any, path: str, parts: tuple[str, ...] | list[str] | None = None) -> Any:
    """The value at a dot path, or ``MISSING``. A key that itself contains dots wins.
    ``parts``: ``path.split(".")``, when the caller has it already."""
    is_mapping = type(contents) is dict or isinstance(contents, Mapping)
    if is_mapping and path in contents:
        return contents[path]
    node = contents
    for part in path.split(".") if parts is None else parts:
        if type(node) is dict or isinstance(node, Mapping):
            node = node.get(part, MISSING)
        elif type(node) is list and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
        if node is MISSING:
            return MISSING
    return node


def same(stored: Any, wanted: Any) -> bool:
    """Equality that never confuses a bool with a number (True is not 1 here)."""
    if type(stored) is bool or type(wanted) is bool:
        return type(stored) is bool and type(wanted) is bool and stored == wanted
    if isinstance(wanted, Mapping):
        return (
            isinstance(stored, Mapping)
            and stored.keys() == wanted.keys()
            and all(same(stored[k], wanted[k]) for k in wanted)
        )
    if isinstance(wanted, (list, tuple)):
        return (
            type(stored) is list
            and len(stored) == len(wanted)
            and all(same(s, w) for s, w in zip(stored, wanted))
        )
    return stored == wanted


def holds(found: Any, condition: Condition) -> bool:
    """Whether the value found at the condition's path (or MISSING) satisfies it."""
    op, wanted = condition.op, condition.value
    if op == "$ne":
        return found is MISSING or not same(found, wanted)
    if found is MISSING:
        return False
    if op == "$eq":
        return same(found, wanted)
    if op == "$in":
        return any(same(found, value) for value in wanted)
    if not is_number(found):
        return False
    if op == "$gt":
        return found > wanted
    if op == "$gte":
        return found >= wanted
    if op == "$lt":
        return found < wanted
    return found <= wanted


def matcher(conditions: tuple[Condition, ...]) -> Any:
    """contents -> whether every condition holds (the exact test behind every index answer)."""

    def matches(contents: Any) -> bool:
        for condition in conditions:
            if not holds(lookup(contents, condition.path, condition.parts), condition):
                return False
        return True

    return matches
