"""Each agent's bookkeeping in Redis: the one module that names its fields and reads or writes them.

    <prefix>:{<agent>}:meta       hash   the fields below
    <prefix>:{<agent>}:reads      hash   memory_id -> retrieval count of STM/IM memories
    <prefix>:{<agent>}:ltm_reads  hash   memory_id -> focused reads of LTM memories not yet in SQL
    <prefix>:{<agent>}:seen       hash   memory_id -> "<unix time>|<agent's newest step>" of the last read

The Lua scripts (tiers/lua/*.lua) write the same fields by these names; a test checks that they
use no other. What a process keeps of an agent (a cached answer, an index) is valid for one
:class:`Stamp`: the incarnation tells a meta hash Redis created again after losing its data from
the one the process saw, where the version alone would start again from zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tiers import embedded
from tiers.failures import reading, writing
from tiers.keys import KeySchema
from tiers.record import MemoryRecord, parse_seen
from tiers.scripts import Scripts

VERSION = "version"  # moved by every change and every counted read: the cache token
INCARNATION = "inc"  # Redis time (us) when the hash was created; set by the first version move
NEWEST = "newest"  # the highest step stored (a read stamps it: the memory is as young as that)
LTM_LO, LTM_HI = "ltm_lo", "ltm_hi"  # step bounds of the agent's LTM rows (NO_LTM: none)
PROMOTING = "promoting"  # odd while an LTM -> IM promotion runs (a seqlock readers check)
CHANGE_SEQ = "cseq"  # ids logged in the change log so far (tiers/keys.py)
LTM_SEQ = "lseq"  # the last LTM change stamp handed out (indices/snapshot.py)
LTM_EPOCH = "lepoch"  # set when the agent is cleared: persisted LTM indices of before no longer apply
RETENTION_RATE = "rrate"  # the rate the tiers' retention keys were made with (tiers/lua/lib.lua)
FIELDS = (VERSION, INCARNATION, NEWEST, LTM_LO, LTM_HI, PROMOTING, CHANGE_SEQ, LTM_SEQ, LTM_EPOCH, RETENTION_RATE)
NO_LTM = "none"


class Stamp(NamedTuple):
    """Which state of an agent an answer was computed at."""

    incarnation: bytes | None
    version: int


def stamp_of(version: Any, incarnation: Any) -> Stamp:
    return Stamp(incarnation or None, int(version or 0))


class Bookkeeping:
    def __init__(self, client: Any, keys: KeySchema, scripts: Scripts):
        self.client, self.keys, self.scripts = client, keys, scripts

    # -- the cache token ---------------------------------------------------------------------
    def stamp(self, agent_id: str) -> Stamp:
        version, incarnation = reading("redis", lambda: self.client.hmget(
            self.keys.meta(agent_id), VERSION, INCARNATION))
        return stamp_of(version, incarnation)

    def bump(self, agent_id: str) -> None:
        """Move the version: answers kept from before are stale."""
        self.note(agent_id, "upd", "ltm", [])

    def note(self, agent_id: str, op: str, tier: str, memory_ids: Sequence[str], unqueue: bool = False) -> None:
        """Log a change made outside Redis in the agent's change log and move its version;
        ``unqueue`` also takes the ids off the text-embedding queue."""
        keys = [self.keys.meta(agent_id), self.keys.changes(agent_id), self.keys.pending(agent_id)]
        writing("redis", lambda: self.scripts.call("note", keys, [op, tier, "1" if unqueue else "0", *memory_ids]))

    # -- promotions (a seqlock) ----------------------------------------------------------------
    def promotions(self, agent_id: str) -> int:
        """The agent's promotion counter: odd while an LTM -> IM move is under way."""
        return int(reading("redis", lambda: self.client.hget(self.keys.meta(agent_id), PROMOTING)) or 0)

    def begin_promotion(self, agent_id: str) -> None:
        self._promotion(agent_id, "begin")

    def end_promotion(self, agent_id: str) -> None:
        self._promotion(agent_id, "end")

    def _promotion(self, agent_id: str, mark: str) -> None:
        writing("redis", lambda: self.scripts.call("promotion", [self.keys.meta(agent_id)], [mark]))

    # -- where the agent's LTM rows are ----------------------------------------------------------
    def ltm_stamp(self, agent_id: str, highest_in_sql: Callable[[], int]) -> int:
        """A new change stamp for a write to the agent's LTM rows. A counter that starts (the
        agent's first LTM write, or Redis lost its bookkeeping) goes on from the highest stamp in
        SQL: a stamp below a persisted index's would hide the write."""
        meta = [self.keys.meta(agent_id)]
        stamp = int(writing("redis", lambda: self.scripts.call("ltm_stamp", meta, [""])))
        if stamp == 1:
            floor = highest_in_sql()
            if floor:
                stamp = int(writing("redis", lambda: self.scripts.call("ltm_stamp", meta, [floor])))
        return stamp

    def ltm_epoch(self, agent_id: str) -> tuple[int, str]:
        """(the last LTM change stamp handed out, the agent's clearing epoch)."""
        stamp, epoch = reading("redis", lambda: self.client.hmget(self.keys.meta(agent_id), LTM_SEQ, LTM_EPOCH))
        return int(stamp or 0), (epoch or b"0").decode()

    def ltm_bounds(
        self, agent_id: str, compute: Callable[[], tuple[int, int] | None], known: Sequence[Any] | None = None
    ) -> tuple[int, int] | None:
        """Step bounds of the agent's LTM rows (a superset), or None when it has none.

        ``known``: the (lo, hi) fields as a script already read them. When absent (new agent,
        or Redis lost its data) they are ``compute``d from SQL once and recorded only if still
        absent, so a maintainer that wrote LTM rows in between (and set the bounds) wins.
        """
        lo, hi = known if known is not None else reading(
            "redis", lambda: self.client.hmget(self.keys.meta(agent_id), LTM_LO, LTM_HI))
        if lo is not None:
            return None if lo in (NO_LTM, NO_LTM.encode()) else (int(lo), int(hi))
        bounds = compute()
        meta = self.keys.meta(agent_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(meta, LTM_LO, NO_LTM if bounds is None else bounds[0])
        pipe.hsetnx(meta, LTM_HI, NO_LTM if bounds is None else bounds[1])
        with embedded.derived():  # derived from SQL again when absent: a read leaves the snapshot as it was
            writing("redis", pipe.execute)
        return bounds

    def widen_ltm_bounds(self, agent_id: str, lo: int, hi: int, current: tuple[int, int] | None) -> None:
        """Record that LTM now holds steps ``lo`` to ``hi`` too. Call after the SQL commit."""
        if current is not None:
            lo, hi = min(lo, current[0]), max(hi, current[1])
        writing("redis", lambda: self.client.hset(self.keys.meta(agent_id), mapping={LTM_LO: lo, LTM_HI: hi}))

    def forget_ltm_bounds(self, agent_id: str) -> None:
        """Drop the recorded bounds, so the next reader computes them from SQL again."""
        writing("redis", lambda: self.client.hdel(self.keys.meta(agent_id), LTM_LO, LTM_HI))

    def raise_ltm_stamp(self, agent_id: str, floor: int) -> None:
        """Make the next LTM change stamp come out above ``floor`` (SQL's highest)."""
        if floor:
            writing("redis", lambda: self.scripts.call("ltm_stamp", [self.keys.meta(agent_id)], [floor]))

    # -- reads and ages ----------------------------------------------------------------------------
    def retention_state(self, agent_id: str) -> tuple[str | None, dict[str, float]]:
        """The rate the agent's retention keys were made with (None: not recorded), and the
        step at which each read memory was last read."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.meta(agent_id), RETENTION_RATE)
        pipe.hgetall(self.keys.seen(agent_id))
        rate, seen = reading("redis", pipe.execute)
        last_read_step = {}
        for memory_id, value in seen.items():
            _, step = parse_seen(value)
            if step is not None:
                last_read_step[memory_id.decode()] = float(step)
        return (None if rate is None else rate.decode()), last_read_step

    def restore_access(self, agent_id: str, records: Sequence[MemoryRecord]) -> None:
        """Give STM or IM memories the retrieval counts and last reads they had (an import)."""
        counts = {r.memory_id: r.retrieval_count for r in records if r.retrieval_count}
        seen = {r.memory_id: f"{r.last_access_time!r}|{'' if r.last_access_step is None else r.last_access_step}"
                for r in records if r.last_access_time is not None}
        pipe = self.client.pipeline(transaction=False)
        if counts:
            pipe.hset(self.keys.reads(agent_id), mapping=counts)
        if seen:
            pipe.hset(self.keys.seen(agent_id), mapping=seen)
        if counts or seen:
            writing("redis", pipe.execute)

    def set_read_counts(self, agent_id: str, counts: dict[str, int]) -> None:
        """Give memories that came back to IM the retrieval counts they had in LTM."""
        if counts:
            writing("redis", lambda: self.client.hset(self.keys.reads(agent_id), mapping=counts))

    def pending_ltm_reads(self, agent_id: str) -> tuple[dict[str, int], list[bytes | None]]:
        """Focused reads of LTM memories not yet flushed to SQL (memory_id -> count), and the
        last-seen stamp of each, in the same order."""
        pending_raw = reading("redis", lambda: self.client.hgetall(self.keys.ltm_reads(agent_id)))
        pending = {k.decode(): int(v) for k, v in pending_raw.items()}
        if not pending:
            return {}, []
        seen = reading("redis", lambda: self.client.hmget(self.keys.seen(agent_id), list(pending)))
        return pending, seen

    def drain_ltm_reads(self, agent_id: str, taken: dict[str, int], flushed: Sequence[str]) -> list[str]:
        """Take ``taken`` reads off the pending counts (those counted meanwhile stay); the
        last-seen stamps of ``flushed`` ids go once nothing is pending. Returns the drained ids."""
        keys = [self.keys.ltm_reads(agent_id), self.keys.seen(agent_id)]
        args: list[Any] = [len(taken)]
        for memory_id, count in taken.items():
            args += (memory_id, count)
        drained = writing("redis", lambda: self.scripts.call("drain_reads", keys, [*args, *flushed]))
        return [m.decode() for m in drained]

    def queue_ltm_reads(
        self, pipe: Any, agent_id: str, memory_ids: Sequence[str]
    ) -> Callable[[list[MemoryRecord], list[Any]], list[MemoryRecord]]:
        """Queue a read of the focused reads of these LTM memories that maintenance has not yet
        flushed to SQL. Returns what applies the two answers to the LTM rows."""
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

        (Reads of STM/IM memories are counted by the focus script itself.)
        """
        keys = [self.keys.ltm_reads(agent_id), self.keys.seen(agent_id), self.keys.meta(agent_id)]
        (pending,) = writing("redis", lambda: self.scripts.call("touch", keys, [repr(now), record.memory_id]))
        return record.with_access(record.retrieval_count + int(pending), f"{now!r}|")

    # -- clearing ----------------------------------------------------------------------------------
    def fresh_start(self, pipe: Any, agent_id: str, now_ns: int) -> None:
        """Queue the bookkeeping of an agent cleared at ``now_ns``: a version and an incarnation
        never used before (no answer kept from before the clear survives), a change-log seq that
        jumps (every process's indices rebuild), a new epoch (persisted LTM indices of its past no
        longer apply) and no LTM rows."""
        pipe.hset(self.keys.meta(agent_id), mapping={
            VERSION: now_ns, INCARNATION: now_ns // 1000, CHANGE_SEQ: now_ns // 1_000_000, LTM_EPOCH: now_ns,
            LTM_LO: NO_LTM, LTM_HI: NO_LTM})
