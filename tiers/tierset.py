"""The three tiers of one engine and what they share in Redis: the boundary the engine works through.

The engine (reads and writes), the maintainer (moves), the text embedder and the in-process
indices reach Redis and SQL only through this bundle and the tiers it holds, so every driver
error is translated here (tiers/failures.py, tiers/ltm.py) and every read that spans several
keys is one round trip written down once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tiers.base import FastTier, LongTermTier, Tier
from tiers.bookkeeping import PROMOTING, Bookkeeping, Stamp, stamp_of
from tiers.codec import PayloadCodec, decode_record, with_importance
from tiers.deployment import Binding, Deployment
from tiers.dictionaries import DictionaryStore
from tiers.errors import MemoryConfigException, StoreIncompleteError, TierUnavailableError
from tiers.failures import reading, streamed, writing
from tiers.keys import KeySchema
from tiers.ltm import SQLTier
from tiers.ltm_schema import DEFAULT_PARTITIONS
from tiers.moves import Journal, Leases
from tiers.record import MemoryRecord
from tiers.redis_tier import DEFAULT_RETENTION_RATE, RedisTier, since_seconds
from tiers.registry import AgentRegistry
from tiers.scripts import Scripts


@dataclass(frozen=True)
class TierSettings:
    """What the tiers take from the engine's configuration (memory/config.py documents each)."""

    key_prefix: str = "tiermem"
    change_log_limit: int = 2000
    compression_level: int = 3
    dictionary_size: int = 32768
    dictionary_samples: int = 500
    wait_replicas: int = 0
    ltm_partitions: int = DEFAULT_PARTITIONS
    retention_rate: float = DEFAULT_RETENTION_RATE


def open_tiers(
    client: Any,
    engine: Any,
    settings: TierSettings,
    *,
    owned_engine: bool = True,
    redis_where: str = "Redis",
    persist_redis: Callable[[], object] | None = None,
    adopt: bool = False,
) -> TierSet:
    """The tiers of one engine on ``client`` (Redis) and ``engine`` (SQLAlchemy), bound into one
    deployment before anything is read or written (tiers/deployment.py): MemoryConfigException
    when Redis or the LTM refuses, or they belong to other deployments. ``adopt`` binds the
    prefix to this LTM whatever Redis names (Binding.adopt)."""
    keys = KeySchema(settings.key_prefix)
    scripts = Scripts(client, {"CHANGE_LOG_IDS": settings.change_log_limit}, settings.wait_replicas)
    try:
        reading("redis", scripts.load)
        ltm = SQLTier(engine, namespace=settings.key_prefix, owned=owned_engine, partitions=settings.ltm_partitions)
    except TierUnavailableError as exc:
        raise MemoryConfigException(f"cannot open the tiers: {exc}") from exc
    binding = Binding(client, keys, scripts, engine, settings.key_prefix, redis_where)
    try:
        deployment = binding.adopt() if adopt else binding.bind()
    except TierUnavailableError as exc:
        ltm.close()
        raise MemoryConfigException(f"cannot bind the deployment: {exc}") from exc
    except MemoryConfigException:
        ltm.close()
        raise
    store = DictionaryStore(client, keys, engine, settings.key_prefix)
    codec = PayloadCodec(level=settings.compression_level, dictionary_size=settings.dictionary_size,
                         dictionary_samples=settings.dictionary_samples, load_dictionary=store.load,
                         save_dictionary=store.save, latest_dictionary=store.latest)
    ltm.codec = codec
    stm = RedisTier("stm", client, keys, scripts, None, settings.retention_rate)
    im = RedisTier("im", client, keys, scripts, codec, settings.retention_rate)
    tiers = TierSet(client, keys, scripts, codec, stm, im, ltm, binding=binding, deployment=deployment)
    if persist_redis is not None:
        tiers.persist_redis = persist_redis
    return tiers


@dataclass
class RedisRead:
    """What one query found in Redis (see TierSet.read_redis)."""

    answers: list[list[MemoryRecord]]  # STM's and IM's
    bounds: tuple[int, int] | None  # the agent's LTM step bounds (None: no LTM rows)
    stamp: Stamp | None  # None: Redis did not answer
    promoting: int | None  # the promotion counter (a seqlock, see Bookkeeping.promotions)
    ltm_pending: int = 0  # LTM memories with focused reads not yet flushed to SQL


@dataclass
class WorkProbe:
    """Whether an agent's tiers are due for maintenance (see TierSet.work_probe)."""

    counts: tuple[int, int]  # STM, IM
    oldest: tuple[float | None, float | None]  # unix time the oldest entered STM, IM
    pending: bool  # journaled moves or LTM reads wait


@dataclass
class TierSet:
    client: Any
    keys: KeySchema
    scripts: Scripts
    codec: PayloadCodec
    stm: FastTier
    im: FastTier
    ltm: LongTermTier
    binding: Binding | None = None  # the deployment's two records (None: tiers built alone, in tests)
    deployment: Deployment | None = None
    meta: Bookkeeping = field(init=False)
    registry: AgentRegistry = field(init=False)
    leases: Leases = field(init=False)
    journal: Journal = field(init=False)
    # Makes what Redis holds durable before LTM gives rows up to it (a promotion) or drops them
    # (a clear): the embedded engine's snapshot; a Redis server keeps to its own persistence.
    persist_redis: Callable[[], object] = lambda: None

    def __post_init__(self) -> None:
        self.meta = Bookkeeping(self.client, self.keys, self.scripts)
        self.registry = AgentRegistry(self.client, self.keys, self.scripts.wait if self.scripts.guarded else None)
        self.leases = Leases(self.client, self.keys, self.scripts)
        self.journal = Journal(self.client, self.keys)

    def tiers(self) -> tuple[Tier, Tier, Tier]:
        return self.stm, self.im, self.ltm

    def incarnation_moved(self) -> bool:
        """Check the deployment as Redis holds it now; True when Redis lost its data since this
        process last looked (it is bound again): every answer and index kept from before is stale."""
        if self.binding is None or self.deployment is None:
            return False
        current = self.binding.current(self.deployment)
        moved, self.deployment = current is not self.deployment, current
        if moved:
            self.registry.forget_known()
        return moved

    # -- reads that span the Redis tiers -----------------------------------------------------------
    def read_redis(self, agent_id: str, query: Mapping[str, Any]) -> RedisRead:
        """One query's answer from STM and IM with the agent's bookkeeping, in one script call
        (range_redis.lua): atomic, so the stamp, the promotion counter and the LTM bounds
        describe the same moment as the records."""
        stm_keys, args = self.stm.range_call(agent_id, **query)
        im_keys, _ = self.im.range_call(agent_id, **query)
        keys = [self.keys.meta(agent_id), self.keys.reads(agent_id), self.keys.seen(agent_id), *stm_keys, *im_keys,
                self.keys.ltm_reads(agent_id)]
        version, promoting, stm_raw, im_raw, ltm_lo, ltm_hi, ltm_pending, incarnation = reading(
            "stm+im", lambda: self.scripts.call("range_redis", keys, args))
        return RedisRead(
            [self.stm.decode(agent_id, stm_raw), self.im.decode(agent_id, im_raw)],
            self.ltm_bounds(agent_id, (ltm_lo, ltm_hi)),
            stamp_of(version, incarnation),
            int(promoting or 0),
            int(ltm_pending),
        )

    def focused(self, agent_id: str, memory_id: str, now: float) -> tuple[MemoryRecord | None, int]:
        """A focused read of one memory in STM, else IM (counted once), with the promotion
        counter read before it: (the record or None, counter)."""
        keys = [self.keys.meta(agent_id), self.keys.reads(agent_id), self.keys.seen(agent_id),
                self.stm.tier_keys(agent_id).data, self.im.tier_keys(agent_id).data]
        promoting, stm_raw, im_raw = reading("stm+im", lambda: self.scripts.call("focus", keys, [repr(now), memory_id]))
        found = self.stm.decode(agent_id, stm_raw) or self.im.decode(agent_id, im_raw)
        return (found[0] if found else None), int(promoting or 0)

    def fetch_many(
        self,
        requests: Mapping[str, tuple[Mapping[str, Sequence[str]], Mapping[str, Sequence[int]] | None, int | None]],
        changes_per_read: int = 1000,
    ) -> dict[str, tuple[list[MemoryRecord], Any]]:
        """Records by agent, tier and id, read without counting (queries are not focused reads),
        with LTM rows' pending read counts, in one Redis round trip for all the agents (and one
        LTM read per agent with LTM ids). Each request is (by_tier, steps, changes_since):
        ``steps`` (aligned with the ids) lets LTM read its rows by primary key at once; with
        ``changes_since``, the round trip also reads the agent's change log from there (answer
        as :meth:`changes`)."""
        out: dict[str, tuple[list[MemoryRecord], Any]] = {}
        pipe = self.scripts.batch()
        plans = []
        for agent_id, (by_tier, steps, changes_since) in requests.items():
            queued = len(pipe)
            stm_ids, im_ids = (list(dict.fromkeys(by_tier.get(name) or ())) for name in ("stm", "im"))
            ltm_ids = list(by_tier.get("ltm") or ())
            fetched = bool(stm_ids or im_ids or changes_since is not None)
            if fetched:  # the log and both Redis tiers' records in one script call
                keys = [self.keys.meta(agent_id), self.keys.changes(agent_id), self.stm.tier_keys(agent_id).data,
                        self.im.tier_keys(agent_id).data, self.keys.reads(agent_id), self.keys.seen(agent_id)]
                position = "" if changes_since is None else max(changes_since, 0)
                self.scripts.queue(pipe, "fetch", keys, [position, changes_per_read, len(stm_ids), *stm_ids, *im_ids])
            # reads of LTM memories counted since maintenance last flushed them to SQL
            add_reads = self.meta.queue_ltm_reads(pipe, agent_id, ltm_ids) if ltm_ids else None
            plans.append((agent_id, fetched, ltm_ids, add_reads, steps, len(pipe) - queued))
        answers = reading("stm+im", lambda: self.scripts.execute(pipe)) if any(p[-1] for p in plans) else []
        at = 0
        for agent_id, fetched, ltm_ids, add_reads, steps, count in plans:
            mine, at = answers[at : at + count], at + count
            log, found = None, []
            if fetched:
                log, stm_raw, im_raw = mine.pop(0)
                found = self.stm.decode(agent_id, stm_raw) + self.im.decode(agent_id, im_raw)
            if add_reads is not None:
                rows = self.ltm.get_many(agent_id, ltm_ids, steps=None if steps is None else steps["ltm"])
                found += add_reads(rows, mine)
            out[agent_id] = (found, log)
        return out

    def settle_ltm_rows(self, agent_id: str, rows: list[MemoryRecord], redis: RedisRead) -> tuple[list[MemoryRecord], int]:
        """A query's LTM rows with the focused reads not flushed to SQL yet (when the read of
        Redis saw any), and the promotion counter now (for the seqlock check): one round trip."""
        if not (rows and redis.ltm_pending):
            return rows, self.meta.promotions(agent_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.meta(agent_id), PROMOTING)
        add_reads = self.meta.queue_ltm_reads(pipe, agent_id, [r.memory_id for r in rows])
        promoting, *reads = reading("redis", pipe.execute)
        return add_reads(rows, reads), int(promoting or 0)

    def ltm_bounds(self, agent_id: str, known: Sequence[Any] | None = None) -> tuple[int, int] | None:
        """Step bounds of the agent's LTM rows, or None when it has none (Bookkeeping.ltm_bounds)."""
        return self.meta.ltm_bounds(agent_id, lambda: self.ltm.step_bounds(agent_id), known)

    def widen_ltm_bounds(self, agent_id: str, records: Sequence[MemoryRecord]) -> None:
        """Record that LTM now holds these records' steps. Call after the SQL commit."""
        steps = [record.step_number for record in records]
        self.meta.widen_ltm_bounds(agent_id, min(steps), max(steps), self.ltm_bounds(agent_id))

    def ltm_stamp(self, agent_id: str) -> int:
        """A new change stamp for a write to the agent's LTM rows (Bookkeeping.ltm_stamp)."""
        return self.meta.ltm_stamp(agent_id, lambda: self.ltm.latest_stamp(agent_id))

    # -- the change log ------------------------------------------------------------------------------
    def changes(self, agent_id: str, position: int, most: int) -> Any:
        """The agent's change log after ``position``: (seq, version, entries, incarnation), see changes.lua."""
        keys = [self.keys.meta(agent_id), self.keys.changes(agent_id)]
        return reading("redis", lambda: self.scripts.call("changes", keys, [max(position, 0), most]))

    # -- writes that span the Redis tiers -----------------------------------------------------------
    def store(
        self,
        batches: Sequence[tuple[str, Callable[[], list[MemoryRecord]]]],
        now: float,
        *,
        embed_text: bool,
        skip_stored: bool = False,
    ) -> None:
        """Put each agent's records in STM: one put script per agent (atomic), streamed when there
        are several; ``batches`` are (agent, a function building its records). A call whose reply
        is lost is sent again in its retry form, which skips what is stored already. Raises
        StoreIncompleteError saying which agents' records landed when Redis fails."""
        if not batches:
            return
        agents = [agent_id for agent_id, _ in batches]
        try:
            writing("stm", lambda: self.registry.register(agents))
        except TierUnavailableError as exc:
            raise StoreIncompleteError(f"stored none of the records of {len(agents)} agents: could not register "
                                       f"them: {exc}", frozenset(), frozenset(agents), frozenset(), []) from exc

        def calls() -> Any:
            return (("put", *self.stm.put_call(agent_id, make(), now, embed_text=embed_text, skip_stored=skip_stored))
                    for agent_id, make in batches)

        if len(batches) == 1:  # one agent: one call, no stream
            keys, args = self.stm.put_call(agents[0], batches[0][1](), now, embed_text=embed_text,
                                           skip_stored=skip_stored)
            replies, maybe_ran = streamed("stm", 1, lambda: [self.scripts.call("put", keys, args)])
        else:
            replies, maybe_ran = streamed("stm", len(agents), lambda: self.scripts.stream(calls))
        answered = next((i for i, reply in enumerate(replies) if isinstance(reply, TierUnavailableError)), len(agents))
        unknown = set(agents[answered : answered + maybe_ran])
        failed = [(agent_id, reply) for agent_id, reply in zip(agents, replies) if isinstance(reply, TierUnavailableError)]
        if failed:
            landed = frozenset(agents) - {agent_id for agent_id, _ in failed}
            not_landed = frozenset(agent_id for agent_id, _ in failed if agent_id not in unknown)
            cause = failed[0][1]
            raise StoreIncompleteError(
                f"stored the records of {len(landed)} of {len(agents)} agents; {len(not_landed)} not stored, "
                f"{len(unknown)} unknown (Redis stopped answering): {cause}",
                landed, not_landed, frozenset(unknown), []) from cause

    def rebuild_retention(self, agent_id: str) -> int:
        """Make the agent's retention keys in STM and IM again with this engine's rate (retention.lua);
        returns how many were written."""
        keys = [self.keys.meta(agent_id)]
        for tier in (self.stm, self.im):
            tk = tier.tier_keys(agent_id)
            keys += [tk.step, tk.importance, tk.retention]
        return int(writing("stm+im", lambda: self.scripts.call("retention", keys, [self.stm.retention_rate])))

    def set_redis_importance(self, agent_id: str, memory_id: str, importance: float) -> int:
        """Rewrite a memory's importance in STM and IM; returns how many of them held it.

        The importance sits in the record blob and in the tier's index. Read, rewrite, then a
        script writes only if no move touched the memory meanwhile; otherwise read again.
        """
        stm, im = self.stm.tier_keys(agent_id), self.im.tier_keys(agent_id)
        keys = [stm.data, stm.importance, im.data, im.importance, self.keys.meta(agent_id), self.keys.changes(agent_id),
                stm.step, stm.retention, im.step, im.retention]
        while True:
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(stm.data, memory_id)
            pipe.hget(im.data, memory_id)
            blobs = reading("stm+im", pipe.execute)
            args: list[Any] = [memory_id, repr(importance)]
            for blob in blobs:
                args += [b"", b""] if blob is None else [blob, with_importance(blob, importance)]
            args.append(self.stm.retention_rate)
            found = writing("stm+im", functools.partial(self.scripts.call, "set_importance", keys, args))
            if found >= 0:
                return found

    def clear_agent(self, agent_id: str, now_ns: int) -> int:
        """Delete every memory and every key of an agent; returns how many memories it held."""
        held = self.stm.count(agent_id) + self.im.count(agent_id)
        held += self.ltm.clear(agent_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("DEL", *self.keys.all_agent_keys(agent_id))  # one slot: a cluster pipeline takes it
        self.meta.fresh_start(pipe, agent_id, now_ns)
        writing("redis", pipe.execute)
        self.persist_redis()  # the embedded engine: a restart must not bring the cleared memories back
        return held

    def delete_memories(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """Delete memories from whichever tiers hold them: STM and IM with every index entry, read
        count and queue place in one script call (forget.lua), then LTM's rows, logged for the
        indices. Returns the ids some tier held. The caller holds the agent's maintenance lease,
        so no move is carrying one of them between tiers meanwhile."""
        stm, im = self.stm.tier_keys(agent_id), self.im.tier_keys(agent_id)
        keys = [*stm.all(), *im.all(), self.keys.meta(agent_id), self.keys.reads(agent_id), self.keys.seen(agent_id),
                self.keys.ltm_reads(agent_id), self.keys.changes(agent_id), self.keys.pending(agent_id)]
        found = writing("stm+im", lambda: self.scripts.call("forget", keys, list(memory_ids)))
        removed = {m.decode() if isinstance(m, bytes) else m for m in found}
        if self.ltm_bounds(agent_id) is not None:
            rows = sorted(self.ltm.held(agent_id, memory_ids))
            if rows:
                self.ltm.delete_many(agent_id, rows, changed=self.ltm_stamp(agent_id))
                self.meta.note(agent_id, "del", "ltm", rows)  # logs the change, bumps the version
                removed.update(rows)
        return removed

    def reconcile_with_ltm(self, agents: Sequence[str], promoting: str) -> int:
        """Make Redis agree with LTM again after Redis was restored from an older copy (the
        embedded engine's snapshot, after its process was killed): LTM holds what maintenance
        moved there since, so Redis's copies of those memories go (unless a journaled promotion
        ``promoting`` is taking them out of LTM: the next maintenance finishes it), the recorded
        LTM bounds are dropped to be computed again, and LTM change stamps go on from SQL's
        highest; maintenance leases restored with the copy belong to a process that is gone.
        Returns how many copies went."""
        removed = 0
        for agent_id in agents:
            self.leases.break_lease(agent_id)
            self.meta.forget_ltm_bounds(agent_id)
            self.meta.raise_ltm_stamp(agent_id, self.ltm.latest_stamp(agent_id))
            coming_back = set(self.journal.entries(agent_id).get(promoting, ()))
            for tier in (self.stm, self.im):
                held = tier.memory_ids(agent_id)
                doubled = [m for m in self.ltm.held(agent_id, held) if m not in coming_back] if held else []
                removed += tier.delete_many(agent_id, doubled, drop_access=True, moved_to="ltm") if doubled else 0
        return removed

    # -- agents ----------------------------------------------------------------------------------------
    def agents(self) -> list[str]:
        """Every agent holding memories under this key prefix, in Redis or in LTM: the registered
        ones (tiers/registry.py) that hold any, and LTM's."""
        in_redis = reading("redis", self.registry.agents)
        counts: list[int] = []
        if in_redis:
            pipe = self.client.pipeline(transaction=False)
            for agent in in_redis:
                pipe.hlen(self.stm.tier_keys(agent).data)
                pipe.hlen(self.im.tier_keys(agent).data)
            counts = reading("redis", pipe.execute)
        holding = {agent for i, agent in enumerate(in_redis) if counts[2 * i] or counts[2 * i + 1]}
        return sorted(holding | set(self.ltm.agents()))

    # -- maintenance ------------------------------------------------------------------------------------
    def work_probe(self, agent_id: str) -> WorkProbe:
        """What maintenance needs to decide whether an agent has work, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for tier in (self.stm, self.im):
            pipe.hlen(tier.tier_keys(agent_id).data)
            pipe.zrange(tier.tier_keys(agent_id).since, 0, 0, withscores=True)
        pipe.exists(self.keys.moves(agent_id), self.keys.ltm_reads(agent_id))
        stm_count, stm_oldest, im_count, im_oldest, pending = reading("redis", pipe.execute)
        oldest = tuple(since_seconds(first[0][1]) if first else None for first in (stm_oldest, im_oldest))
        return WorkProbe((int(stm_count), int(im_count)), oldest, pending > 0)  # type: ignore[arg-type]

    # -- the text-embedding queue ----------------------------------------------------------------------
    def pending_text(self, agent_id: str, most: int) -> list[str]:
        """The first ``most`` memories of the agent waiting for a text vector (lowest step first)."""
        return [m.decode() for m in reading("redis", lambda: self.client.zrange(self.keys.pending(agent_id), 0, most - 1))]

    def pending_text_among(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """The ids among ``memory_ids`` that wait in Redis's text-embedding queue."""
        if not memory_ids:
            return set()
        scores = reading("redis", lambda: self.client.zmscore(self.keys.pending(agent_id), list(memory_ids)))
        return {memory_id for memory_id, score in zip(memory_ids, scores) if score is not None}

    def drop_pending_text(self, agent_id: str, memory_ids: Sequence[str]) -> None:
        if memory_ids:
            writing("redis", lambda: self.client.zrem(self.keys.pending(agent_id), *memory_ids))

    def held(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """The ids among ``memory_ids`` that some tier holds: STM and IM in one round trip, then LTM
        when the agent has rows there."""
        pipe = self.client.pipeline(transaction=False)
        for tier in (self.stm, self.im):
            for memory_id in memory_ids:
                pipe.hexists(tier.tier_keys(agent_id).data, memory_id)
        answers = reading("stm+im", pipe.execute)
        n = len(memory_ids)
        found = {m for i, m in enumerate(memory_ids) if answers[i] or answers[n + i]}
        rest = [m for m in memory_ids if m not in found]
        if rest and self.ltm_bounds(agent_id) is not None:
            found |= self.ltm.held(agent_id, rest)
        return found

    def redis_records(self, agent_id: str, memory_ids: Sequence[str]) -> dict[str, tuple[FastTier, bytes, MemoryRecord]]:
        """The records among ``memory_ids`` that STM or IM hold (STM's copy first), each with its
        raw blob (for a compare-and-set rewrite): memory_id -> (tier, blob, record)."""
        pipe = self.client.pipeline(transaction=False)
        for tier in (self.stm, self.im):
            pipe.hmget(tier.tier_keys(agent_id).data, list(memory_ids))
        found: dict[str, tuple[FastTier, bytes, MemoryRecord]] = {}
        for tier, blobs in zip((self.stm, self.im), reading("stm+im", pipe.execute)):
            for memory_id, blob in zip(memory_ids, blobs):
                if blob is not None and memory_id not in found:
                    found[memory_id] = (tier, blob, decode_record(agent_id, memory_id, blob, tier.name, tier.codec))
        return found
