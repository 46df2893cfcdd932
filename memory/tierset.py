"""The three tiers of one engine and the per-agent bookkeeping they share in Redis.

The engine (reads and writes) and the maintainer (moves) both work through this bundle, so the
meta-hash conventions (version, LTM step bounds, read counts) are written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from redis.exceptions import RedisError

from memory.errors import TierUnavailableError
from memory.record import MemoryRecord
from tiers.codec import PayloadCodec, with_importance
from tiers.keys import KeySchema
from tiers.ltm import SQLTier
from tiers.redis_tier import RedisTier
from tiers.scripts import Scripts

NO_LTM = "none"  # meta ltm_lo value meaning "this agent has no LTM rows"


@dataclass
class RedisRead:
    """What one query found in Redis (see TierSet.read_redis)."""

    answers: list[list[MemoryRecord]]  # STM's and IM's
    bounds: tuple[int, int] | None  # the agent's LTM step bounds (None: no LTM rows)
    version: int | None
    promoting: int | None  # the promotion counter (a seqlock, see promotions)
    ltm_pending: int = 0  # LTM memories with focused reads not yet flushed to SQL


@dataclass
class TierSet:
    client: Any
    keys: KeySchema
    scripts: Scripts
    codec: PayloadCodec
    stm: RedisTier
    im: RedisTier
    ltm: SQLTier
    # Makes what Redis holds durable before LTM gives rows up to it (a promotion): the embedded
    # engine's snapshot; a Redis server keeps to its own persistence settings.
    persist_redis: Callable[[], None] = lambda: None

    def redis(self, operation: Any) -> Any:
        """Run a plain Redis call, translating its failure like the tiers do."""
        try:
            return operation()
        except RedisError as exc:
            raise TierUnavailableError("redis", str(exc)) from exc

    def version(self, agent_id: str) -> int:
        raw = self.redis(lambda: self.client.hget(self.keys.meta(agent_id), "version"))
        return int(raw or 0)

    def promotions(self, agent_id: str) -> int:
        """The agent's promotion counter: odd while an LTM -> IM move is under way (a seqlock)."""
        raw = self.redis(lambda: self.client.hget(self.keys.meta(agent_id), "promoting"))
        return int(raw or 0)

    def mark_promotion(self, agent_id: str) -> int:
        return self.redis(lambda: self.client.hincrby(self.keys.meta(agent_id), "promoting", 1))

    def note(self, agent_id: str, op: str, tier: str, memory_ids: Sequence[str], unqueue: bool = False) -> None:
        """Log a change made outside Redis in the agent's change log (and bump its version);
        ``unqueue`` also takes the ids off the text-embedding queue."""
        keys = [self.keys.meta(agent_id), self.keys.changes(agent_id), self.keys.pending(agent_id)]
        self.redis(lambda: self.scripts.call("note", keys, [op, tier, "1" if unqueue else "0", *memory_ids]))

    def ltm_stamp(self, agent_id: str) -> int:
        """A new change stamp for a write to the agent's LTM rows (see indices/snapshot.py).

        A counter that starts (the agent's first LTM write, or Redis lost its bookkeeping) goes
        on from the highest stamp in SQL: a stamp below a persisted index's would hide the write.
        """
        meta = self.keys.meta(agent_id)
        stamp = int(self.redis(lambda: self.client.hincrby(meta, "lseq", 1)))
        if stamp == 1:
            latest = self.ltm.latest_stamp(agent_id)
            if latest:
                stamp = int(self.redis(lambda: self.client.hincrby(meta, "lseq", latest)))
        return stamp

    def bump(self, agent_id: str) -> None:
        self.redis(lambda: self.client.hincrby(self.keys.meta(agent_id), "version", 1))

    def read_redis(self, agent_id: str, query: Mapping[str, Any]) -> RedisRead:
        """One query's answer from STM and IM with the agent's bookkeeping, in one script call
        (range_redis.lua): atomic, so the version, the promotion counter and the LTM bounds
        describe the same moment as the records."""
        stm_keys, args = self.stm.range_call(agent_id, **query)
        im_keys, _ = self.im.range_call(agent_id, **query)
        keys = [self.keys.meta(agent_id), self.keys.reads(agent_id), self.keys.seen(agent_id), *stm_keys, *im_keys,
                self.keys.ltm_reads(agent_id)]
        version, promoting, stm_raw, im_raw, ltm_lo, ltm_hi, ltm_pending = self.redis(
            lambda: self.scripts.call("range_redis", keys, args)
        )
        return RedisRead(
            [self.stm.decode(agent_id, stm_raw), self.im.decode(agent_id, im_raw)],
            self.ltm_bounds(agent_id, (ltm_lo, ltm_hi)),
            int(version or 0),
            int(promoting or 0),
            int(ltm_pending),
        )

    # -- where the agent's LTM rows may be -------------------------------------------------------
    def ltm_bounds(self, agent_id: str, cached: Sequence[bytes | None] | None = None) -> tuple[int, int] | None:
        """Step bounds of the agent's LTM rows (a superset), or None when it has none.

        The bounds live in the agent's meta hash; when absent (new agent, or Redis lost its data)
        they are computed from SQL once and recorded with HSETNX, so a maintainer that wrote LTM
        rows in between (and then set the bounds itself) always wins.
        """
        lo, hi = cached if cached is not None else self.redis(
            lambda: self.client.hmget(self.keys.meta(agent_id), "ltm_lo", "ltm_hi")
        )
        if lo is not None:
            return None if lo.decode() == NO_LTM else (int(lo), int(hi))
        bounds = self.ltm.step_bounds(agent_id)
        meta = self.keys.meta(agent_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(meta, "ltm_lo", NO_LTM if bounds is None else bounds[0])
        pipe.hsetnx(meta, "ltm_hi", NO_LTM if bounds is None else bounds[1])
        self.redis(pipe.execute)
        return bounds

    def widen_ltm_bounds(self, agent_id: str, records: Sequence[MemoryRecord]) -> None:
        """Record that LTM now holds these records' steps. Call after the SQL commit."""
        current = self.ltm_bounds(agent_id)
        steps = [record.step_number for record in records]
        lo, hi = min(steps), max(steps)
        if current is not None:
            lo, hi = min(lo, current[0]), max(hi, current[1])
        self.redis(lambda: self.client.hset(self.keys.meta(agent_id), mapping={"ltm_lo": lo, "ltm_hi": hi}))

    def set_redis_importance(self, agent_id: str, memory_id: str, importance: float) -> int:
        """Rewrite a memory's importance in STM and IM; returns how many of them held it.

        The importance sits in the record blob and in the tier's index. Read, rewrite, then a
        script writes only if no move touched the memory meanwhile; otherwise read again.
        """
        stm, im = self.stm.tier_keys(agent_id), self.im.tier_keys(agent_id)
        keys = [stm.data, stm.importance, im.data, im.importance, self.keys.meta(agent_id), self.keys.changes(agent_id)]
        while True:
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(stm.data, memory_id)
            pipe.hget(im.data, memory_id)
            blobs = self.redis(pipe.execute)
            args: list[Any] = [memory_id, repr(importance)]
            for blob in blobs:
                args += [b"", b""] if blob is None else [blob, with_importance(blob, importance)]
            found = self.redis(lambda: self.scripts.call("set_importance", keys, args))
            if found >= 0:
                return found

    # -- read counting -------------------------------------------------------------------------
    def queue_ltm_reads(
        self, pipe: Any, agent_id: str, memory_ids: Sequence[str]
    ) -> Callable[[list[MemoryRecord], list[Any]], list[MemoryRecord]]:
        """Queue a read of the focused reads of these LTM memories that maintenance has not yet
        flushed to SQL (see count_ltm_read). Returns what applies the two answers to LTM rows."""
        pipe.hmget(self.keys.ltm_reads(agent_id), list(memory_ids))
        pipe.hmget(self.keys.seen(agent_id), list(memory_ids))

        def apply(rows: list[MemoryRecord], answers: list[Any]) -> list[MemoryRecord]:
            counts, seen = answers
            pending = {memory_id: (int(count), when)
                       for memory_id, count, when in zip(memory_ids, counts, seen) if count is not None}
            if not pending:
                return rows
            out = []
            for row in rows:
                read = pending.get(row.memory_id)
                out.append(row if read is None else row.with_access(row.retrieval_count + read[0], read[1]))
            return out

        return apply

    def count_ltm_read(self, agent_id: str, record: MemoryRecord, now: float) -> MemoryRecord:
        """Count a focused read of an LTM memory in Redis; maintenance flushes it to SQL.

        (Reads of STM/IM memories are counted by the get script itself.)
        """
        keys = [self.keys.ltm_reads(agent_id), self.keys.seen(agent_id), self.keys.meta(agent_id)]
        (pending,) = self.redis(lambda: self.scripts.call("touch", keys, [repr(now), record.memory_id]))
        return record.with_access(record.retrieval_count + int(pending), f"{now!r}|")
