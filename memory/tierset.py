"""The three tiers of one engine and the per-agent bookkeeping they share in Redis.

The engine (reads and writes) and the maintainer (moves) both work through this bundle, so the
meta-hash conventions (version, LTM step bounds, read counts) are written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from redis.exceptions import RedisError

from memory.errors import TierUnavailableError
from memory.record import MemoryRecord
from tiers.codec import PayloadCodec
from tiers.keys import KeySchema
from tiers.ltm import SQLTier
from tiers.redis_tier import RedisTier
from tiers.scripts import Scripts

NO_LTM = "none"  # meta ltm_lo value meaning "this agent has no LTM rows"


@dataclass
class TierSet:
    client: Any
    keys: KeySchema
    scripts: Scripts
    codec: PayloadCodec
    stm: RedisTier
    im: RedisTier
    ltm: SQLTier

    def redis(self, operation: Any) -> Any:
        """Run a plain Redis call, translating its failure like the tiers do."""
        try:
            return operation()
        except RedisError as exc:
            raise TierUnavailableError("redis", str(exc)) from exc

    def version(self, agent_id: str) -> int:
        raw = self.redis(lambda: self.client.hget(self.keys.meta(agent_id), "version"))
        return int(raw or 0)

    def bump(self, agent_id: str) -> None:
        self.redis(lambda: self.client.hincrby(self.keys.meta(agent_id), "version", 1))

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

    # -- read counting -------------------------------------------------------------------------
    def count_reads(self, agent_id: str, records: Sequence[MemoryRecord], now: float) -> list[MemoryRecord]:
        """Count one read of each record; LTM reads go to the pending hash maintenance flushes."""
        if not records:
            return []
        redis_ids = [r.memory_id for r in records if r.tier != "ltm"]
        ltm_ids = [r.memory_id for r in records if r.tier == "ltm"]
        pipe = self.client.pipeline(transaction=False)
        seen, meta = self.keys.seen(agent_id), self.keys.meta(agent_id)
        if redis_ids:
            self.scripts.queue(pipe, "touch", [self.keys.reads(agent_id), seen, meta], [repr(now), *redis_ids])
        if ltm_ids:
            self.scripts.queue(pipe, "touch", [self.keys.ltm_reads(agent_id), seen, meta], [repr(now), *ltm_ids])
        answers = self.redis(lambda: self.scripts.execute(pipe))
        counts = dict(zip(redis_ids, answers[0])) if redis_ids else {}
        pending = dict(zip(ltm_ids, answers[-1])) if ltm_ids else {}
        touched = []
        for record in records:
            if record.tier == "ltm":
                count = record.retrieval_count + int(pending[record.memory_id])
            else:
                count = int(counts[record.memory_id])
            touched.append(record.with_access(count, f"{now!r}|"))
        return touched
