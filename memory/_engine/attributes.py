"""Exact attribute matching on dot paths into stored contents ("inventory.wood", "position.0").

A query runs the match on every memory of the agent, so paths are split once per query and
plain dicts and lists (what msgpack gives back) skip the abstract-class checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()


def lookup(contents: Any, path: str, parts: list[str] | None = None) -> Any:
    """The value at a dot path, or ``_MISSING``. A key that itself contains dots wins.
    ``parts``: ``path.split(".")``, when the caller has it already."""
    is_mapping = type(contents) is dict or isinstance(contents, Mapping)
    if is_mapping and path in contents:
        return contents[path]
    node = contents
    for part in path.split(".") if parts is None else parts:
        if type(node) is dict or isinstance(node, Mapping):
            node = node.get(part, _MISSING)
        elif type(node) is list and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
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


def matcher(wanted: Mapping[str, Any]) -> Callable[[Any], bool]:
    items = [(path, path.split("."), value) for path, value in wanted.items()]

    def matches(contents: Any) -> bool:
        for path, parts, value in items:
            found = lookup(contents, path, parts)
            if found is _MISSING or not same(found, value):
                return False
        return True

    return matches
