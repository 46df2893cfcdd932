"""Exact attribute matching on dot paths into stored contents ("inventory.wood", "position.0")."""

from __future__ import annotations

from typing import Any, Callable, Mapping

_MISSING = object()


def lookup(contents: Any, path: str) -> Any:
    """The value at a dot path, or ``_MISSING``. A key that itself contains dots wins."""
    if isinstance(contents, Mapping) and path in contents:
        return contents[path]
    node = contents
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def same(stored: Any, wanted: Any) -> bool:
    """Equality that never confuses a bool with a number (True is not 1 here)."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(wanted, Mapping):
        return (
            isinstance(stored, Mapping)
            and stored.keys() == wanted.keys()
            and all(same(stored[k], wanted[k]) for k in wanted)
        )
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(same(s, w) for s, w in zip(stored, wanted))
        )
    return stored == wanted


def matcher(wanted: Mapping[str, Any]) -> Callable[[Any], bool]:
    items = list(wanted.items())

    def matches(contents: Any) -> bool:
        for path, value in items:
            found = lookup(contents, path)
            if found is _MISSING or not same(found, value):
                return False
        return True

    return matches
