"""Pages of a listing: ``limit`` (1 to 1000, default 100) answers after the first ``offset``.

Every listing answers ``next_offset``: the offset of the next page, or null when this page is the
last. A page is never short: it holds ``limit`` answers unless it is the last (one more than asked
is fetched to know), and pages of unchanged data neither repeat nor skip an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Query

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**53  # the engine's largest count

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"answers in the page (at most {MAX_LIMIT})")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="answers to pass over (a previous page's next_offset)")]


def cut(fetched: Sequence[T], limit: int, offset: int) -> tuple[list[T], int | None]:
    """The page and the next page's offset, from up to ``limit + 1`` answers starting at ``offset``."""
    if len(fetched) > limit:
        return list(fetched[:limit]), offset + limit
    return list(fetched), None


def sliced(everything: Sequence[T], limit: int, offset: int) -> tuple[list[T], int | None]:
    """A page of a listing held whole."""
    return cut(everything[offset : offset + limit + 1], limit, offset)


def page(name: str, items: Sequence[Any], next_offset: int | None) -> dict[str, Any]:
    return {name: list(items), "next_offset": next_offset}
