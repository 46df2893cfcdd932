"""The cross-tier merge: k sorted answers joined into one, deduplicated, stopped at a limit.

Each tier answers in the query's order, so ``heapq.merge`` joins them in O(n log k). It compares
keys only, and on equal keys keeps the order of the sources, so passing the tiers as
STM, IM, LTM makes the highest-resolution copy of a memory that sits in two tiers (mid-move)
arrive first; later copies of the same ``memory_id`` are dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from tiers.record import MemoryRecord

Key = Callable[[MemoryRecord], tuple]


def by_step(record: MemoryRecord) -> tuple[int, str]:
    return record.step_number, record.memory_id


def by_importance(record: MemoryRecord) -> tuple[float, str]:
    return record.importance_score, record.memory_id


def _unique(records: Iterable[MemoryRecord]) -> Iterator[MemoryRecord]:
    seen: set[str] = set()
    for record in records:
        if record.memory_id not in seen:
            seen.add(record.memory_id)
            yield record


def merge_tiers(
    answers: Sequence[Iterable[MemoryRecord]], key: Key, reverse: bool = False, limit: int | None = None
) -> list[MemoryRecord]:
    """Merge per-tier answers (highest resolution first) into one ordered, unique list."""
    nonempty = [answer for answer in answers if answer]
    if len(nonempty) <= 1:  # one tier answered: already ordered, ids already unique
        only = list(nonempty[0]) if nonempty else []
        return only if limit is None else only[:limit]
    merged = _unique(heapq.merge(*answers, key=key, reverse=reverse))
    return list(merged if limit is None else islice(merged, limit))
