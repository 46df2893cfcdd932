"""Cross-tier answers: read STM and IM in one round trip, LTM when it may hold part of the answer,
merge them, and keep the answer in the result cache under the agent's stamp.

A read that overlapped a promotion (an LTM memory moving back to IM) is repeated: the promotion
counter works as a seqlock, so no answer misses a memory that was in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory._engine.merge import by_importance, by_step, merge_tiers
from memory.cache import MISS, ResultCache
from memory.config import MemoryConfig
from tiers.async_bridge import pause
from tiers.bookkeeping import Stamp
from tiers.errors import MemoryRetrievalException, OutcomeUnknownError, TierUnavailableError
from tiers.record import MemoryRecord, to_dicts
from tiers.tierset import RedisRead, TierSet

log = logging.getLogger(__name__)

SETTLE_ATTEMPTS = 4  # reads repeated while promotions overlap them (1 + 2 + 4 ms of waiting)


class QueryResult(list):
    """A list of memories; ``failed_tiers`` names tiers that did not answer (degraded reads)."""

    def __init__(self, items: Iterable[Any] = (), failed_tiers: Sequence[str] = ()):
        super().__init__(items)
        self.failed_tiers = tuple(failed_tiers)

    @property
    def degraded(self) -> bool:
        return bool(self.failed_tiers)


@dataclass
class Answer:
    records: list[MemoryRecord]
    failed: list[str]  # tiers that did not answer (degraded reads only)
    stamp: Stamp | None  # the agent's stamp read with the data; None when Redis failed
    settled: bool = True  # False: a promotion ran while LTM was read, so a memory may be missing
    extras: tuple[Mapping[str, Any], ...] | None = None  # per record: similarity_score, distance


class Reads:
    """The read side of one engine: every query's answer goes through :meth:`cached`."""

    def __init__(self, tiers: TierSet, cache: ResultCache, config: MemoryConfig, check_open: Callable[[], None]):
        self._tiers = tiers
        self._cache = cache
        self._degrade = config.degrade_reads
        self._check_open = check_open

    def cached(self, agent_id: str, params: tuple, compute: Callable[[], Answer], skip: int = 0) -> QueryResult:
        """Serve a kept answer if the agent's stamp (incarnation and version) has not moved
        since, else compute and keep; either way without its first ``skip`` memories (a page:
        the pages of one answer share its kept copy).

        A first-time query reads the stamp in the same round trip as its data, so a miss costs
        no extra round trip; checking a kept answer costs one. A stamp of another incarnation
        (Redis lost the agent's keys) never matches, however its version compares.
        """
        self._check_open()
        key = (agent_id, params)
        kept = self._cache.get(key)
        if kept is not MISS:
            stamp, records, extras = kept
            try:
                current = self._tiers.meta.stamp(agent_id)
            except TierUnavailableError as exc:
                if not self._degrade:
                    raise MemoryRetrievalException(f"Redis did not answer: {exc}") from exc
                current = None
            if current == stamp:
                self._cache.hit()
                return public_answer(records, (), extras, skip)
            self._cache.miss()
        answer = until_settled(compute)
        if answer.stamp is not None and not answer.failed and answer.settled:
            self._cache.put(key, (answer.stamp, tuple(answer.records), answer.extras))
        return public_answer(answer.records, answer.failed, answer.extras, skip)

    def uncached(self, compute: Callable[[], Answer], skip: int = 0) -> QueryResult:
        """An answer that is not kept (one over several agents: no one agent's stamp covers it),
        without its first ``skip`` memories."""
        self._check_open()
        answer = until_settled(compute)
        return public_answer(answer.records, answer.failed, answer.extras, skip)

    def memory(self, agent_id: str, memory_id: str, now: float) -> MemoryRecord | None:
        """The focused read of one memory (counted, refreshing its age), from whichever tier holds it."""
        tiers = self._tiers
        try:
            for attempt in range(SETTLE_ATTEMPTS):
                found, promoting = tiers.focused(agent_id, memory_id, now)  # the counter first: see _settled
                if found is not None:
                    return found
                rows = tiers.ltm.get_many(agent_id, [memory_id])
                if rows:
                    return tiers.meta.count_ltm_read(agent_id, rows[0], now)
                if self._settled(agent_id, promoting):
                    return None
                pause(0.001 * 2**attempt)  # a promotion may have moved it past both reads
            return None
        except (TierUnavailableError, OutcomeUnknownError) as exc:
            raise MemoryRetrievalException(f"could not read memory {memory_id}: {exc}") from exc

    def range(self, agent_id: str, query: Mapping[str, Any]) -> Answer:
        """By step or importance (``query``: by, lo, hi, memory_type, reverse, limit)."""
        failed: list[str] = []
        redis = self._redis_answers(agent_id, query, failed)
        answers, settled = redis.answers, True
        if _may_overlap(redis.bounds, query):
            try:
                rows, settled = self._ltm_settled(agent_id, self._tiers.ltm.range(agent_id, **query), redis)
                answers.append(rows)
            except TierUnavailableError as exc:
                self._tier_failure("ltm", exc, failed)
        key = by_step if query["by"] == "step" else by_importance
        merged = merge_tiers(answers, key, reverse=query["reverse"], limit=query["limit"])
        return Answer(merged, failed, redis.stamp, settled)

    def _tier_failure(self, tier: str, exc: Exception, failed: list[str]) -> None:
        if not self._degrade:
            raise MemoryRetrievalException(f"{tier} did not answer: {exc}") from exc
        failed.append(tier)

    def _redis_answers(self, agent_id: str, query: Mapping[str, Any], failed: list[str]) -> RedisRead:
        """STM and IM answers with the agent's stamp, promotion counter and LTM step bounds."""
        try:
            return self._tiers.read_redis(agent_id, query)
        except TierUnavailableError as exc:
            self._tier_failure("stm+im", exc, failed)
            return RedisRead([], (-1, 2**63), None, None)  # LTM bounds unknown: ask it

    def _settled(self, agent_id: str, promoting: int | None) -> bool:
        """After reading LTM: no promotion ran since the Redis tiers were read (seqlock check)."""
        if promoting is None:
            return True  # Redis did not answer: nothing to compare against
        return _unchanged(promoting, self._tiers.meta.promotions(agent_id))

    def _ltm_settled(self, agent_id: str, rows: list[MemoryRecord], redis: RedisRead) -> tuple[list[MemoryRecord], bool]:
        """A query's LTM rows with the focused reads maintenance has not flushed to SQL yet (when
        the read of Redis saw any), and whether they settled (see _settled): one round trip."""
        if redis.promoting is None:
            return rows, True  # Redis did not answer: nothing to compare against or add
        rows, promoting = self._tiers.settle_ltm_rows(agent_id, rows, redis)
        return rows, _unchanged(redis.promoting, promoting)


def until_settled(compute: Callable[[], Answer]) -> Answer:
    """Compute again while a promotion overlapped the read of LTM (see Reads._settled)."""
    for attempt in range(SETTLE_ATTEMPTS):
        answer = compute()
        if answer.settled:
            return answer
        pause(0.001 * 2**attempt)
    # the counter stayed odd: a promotion that died mid-way, whose memories sit in two tiers
    # (readers find them) until maintenance heals it
    log.warning("a promotion kept overlapping this read; answering with the last attempt")
    return answer


def public_answer(
    records: Sequence[MemoryRecord], failed: Sequence[str], extras: Sequence[Mapping[str, Any]] | None = None,
    skip: int = 0,
) -> QueryResult:
    """The public form of an answer without its first ``skip`` memories (a page); ``extras``
    (scores, distances) go into each dict."""
    if failed:
        log.warning("degraded read: tiers %s did not answer; returning what the others hold", ", ".join(failed))
    records, extras = records[skip:], None if extras is None else extras[skip:]
    if extras is None:
        return QueryResult(to_dicts(records), failed)
    return QueryResult(({**memory, **extra} for memory, extra in zip(to_dicts(records), extras)), failed)


def _unchanged(promoting: int, now: int) -> bool:
    """The promotion counter read before LTM (even: none under way) is the same after it."""
    return promoting % 2 == 0 and now == promoting


def _may_overlap(bounds: tuple[int, int] | None, query: Mapping[str, Any]) -> bool:
    if bounds is None:
        return False
    lo, hi = query["lo"], query["hi"]
    if query["by"] != "step":
        return True
    return (hi is None or bounds[0] <= hi) and (lo is None or bounds[1] >= lo)
