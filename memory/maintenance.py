"""Maintenance: who stays in each tier, and moves that never lose a memory.

Per agent, under a lease in Redis so only one process maintains an agent at a time:

1. heal: finish any IM<->LTM move a crashed process left in the agent's journal;
2. STM -> IM: memories past the STM TTL, then, over capacity, the lowest retention scores;
3. IM -> LTM: the same with the IM limits;
4. LTM reads: memories read at least ``promote_threshold`` times since they last arrived in LTM
   come back to IM; the other counts are flushed into their SQL rows.

Retention score = importance x decay ** (steps behind the agent's newest step / decay_steps),
where a read refreshes a memory's age to the step at which it was read.

STM -> IM is one atomic Lua call. IM <-> LTM spans two stores: the ids are journaled in Redis,
the destination is written, then the source deleted, then the journal cleared (invariant 1).
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator

import msgpack
import numpy as np

from memory.config import MemoryConfig
from memory.derive import at_resolution
from memory.errors import MemoryAPIException, MemoryMaintenanceException
from memory.record import MemoryRecord, parse_seen
from memory.tierset import TierSet
from tiers.redis_tier import RedisTier, since_seconds

log = logging.getLogger(__name__)

IM_TO_LTM = "im>ltm"
LTM_TO_IM = "ltm>im"


@dataclass
class MaintenanceReport:
    """What one maintenance run moved, per direction."""

    agents: int = 0  # agents checked (with only_if_needed, some had nothing to do)
    stm_to_im: int = 0
    im_to_ltm: int = 0
    ltm_to_im: int = 0
    healed: int = 0
    reads_flushed: int = 0
    busy: list[str] = field(default_factory=list)  # agents another process was maintaining
    seconds: float = 0.0

    def add(self, other: "MaintenanceReport") -> None:
        for name in ("agents", "stm_to_im", "im_to_ltm", "ltm_to_im", "healed", "reads_flushed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.busy += other.busy

    @property
    def moved(self) -> int:
        return self.stm_to_im + self.im_to_ltm + self.ltm_to_im

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "moved": self.moved}


class LeaseLost(MemoryAPIException):
    """Another process took over an agent's maintenance (this one outlived its lease)."""


class _Lease:
    """An agent's maintenance lease, renewed before every batch: a long run keeps it, and a
    process that lost it (paused past the lease) stops before touching the agent again."""

    def __init__(self, maintainer: "Maintainer", agent_id: str, token: str):
        self.maintainer, self.agent_id, self.token = maintainer, agent_id, token

    def renew(self) -> None:
        if not self.maintainer._renew(self.agent_id, self.token):
            raise LeaseLost(f"the maintenance lease of {self.agent_id} expired; another process may hold it")


class Maintainer:
    """Runs maintenance; ``workers`` threads maintain different agents at once, so one agent's
    Python work overlaps another's wait on Redis and SQL (the GIL is released while waiting)."""

    def __init__(self, tiers: TierSet, config: MemoryConfig, clock: Callable[[], float] = time.time,
                 workers: int = 1):
        self.t = tiers
        self.config = config
        self.clock = clock
        self.workers = workers

    def run(self, agent_ids: Iterable[str], only_if_needed: bool = False) -> MaintenanceReport:
        """Maintain each agent; ``only_if_needed`` first asks (one round trip) whether there is work.

        After a failure no further agent is started; the exception carries what was done.
        """
        agents = list(agent_ids)
        parts = {agent_id: MaintenanceReport() for agent_id in agents}
        started = time.perf_counter()
        failures: list[MemoryAPIException] = []
        if self.workers > 1 and len(agents) > 1:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="tiermem-maintenance") as pool:
                futures = [pool.submit(self._one, agent_id, parts[agent_id], only_if_needed) for agent_id in agents]
                for future in futures:
                    try:
                        future.result()
                    except MemoryAPIException as exc:
                        failures.append(exc)
                        for pending in futures:
                            pending.cancel()
                    except CancelledError:
                        pass
        else:
            for agent_id in agents:
                try:
                    self._one(agent_id, parts[agent_id], only_if_needed)
                except MemoryAPIException as exc:
                    failures.append(exc)
                    break
        report = MaintenanceReport()
        for part in parts.values():
            report.add(part)
        report.seconds = time.perf_counter() - started
        if failures:
            raise MemoryMaintenanceException(f"maintenance stopped: {failures[0]}", report) from failures[0]
        return report

    def _one(self, agent_id: str, report: MaintenanceReport, only_if_needed: bool) -> None:
        report.agents += 1
        if only_if_needed and not self._has_work(agent_id):
            return
        token = self._acquire(agent_id)
        if token is None:
            report.busy.append(agent_id)
            return
        try:
            self._maintain(agent_id, _Lease(self, agent_id, token), report)
        finally:
            self._release(agent_id, token)

    def _has_work(self, agent_id: str) -> bool:
        """Over capacity, past a TTL, journaled moves or pending LTM reads?"""
        keys = self.t.keys
        pipe = self.t.client.pipeline(transaction=False)
        for tier in (self.t.stm, self.t.im):
            pipe.hlen(tier.tier_keys(agent_id).data)
            pipe.zrange(tier.tier_keys(agent_id).since, 0, 0, withscores=True)
        pipe.exists(keys.moves(agent_id), keys.ltm_reads(agent_id))
        stm_count, stm_oldest, im_count, im_oldest, pending = self.t.redis(pipe.execute)
        now = self.clock()
        for count, oldest, cfg in ((stm_count, stm_oldest, self.config.stm_config),
                                   (im_count, im_oldest, self.config.im_config)):
            if count > cfg.memory_limit or (oldest and since_seconds(oldest[0][1]) < now - cfg.ttl):
                return True
        return pending > 0

    # -- the lease -----------------------------------------------------------------------------
    def _acquire(self, agent_id: str) -> str | None:
        token = secrets.token_hex(8)
        ttl_ms = int(self.config.maintenance_lock_timeout * 1000)
        acquired = self.t.redis(lambda: self.t.client.set(self.t.keys.lock(agent_id), token, nx=True, px=ttl_ms))
        return token if acquired else None

    @contextmanager
    def holding(self, agent_id: str, wait: float) -> Iterator[None]:
        """Hold an agent's maintenance lease (so no maintainer moves its memories) for a block,
        waiting up to ``wait`` seconds for one that is running to finish."""
        deadline = time.monotonic() + wait
        token = self._acquire(agent_id)
        while token is None:
            if time.monotonic() >= deadline:
                raise MemoryMaintenanceException(f"agent {agent_id} is being maintained by another process")
            time.sleep(0.05)
            token = self._acquire(agent_id)
        try:
            yield
        finally:
            self._release(agent_id, token)

    def _renew(self, agent_id: str, token: str) -> bool:
        ttl_ms = int(self.config.maintenance_lock_timeout * 1000)
        return bool(self.t.redis(lambda: self.t.scripts.call("renew", [self.t.keys.lock(agent_id)], [token, ttl_ms])))

    def _release(self, agent_id: str, token: str) -> None:
        try:
            self.t.redis(lambda: self.t.scripts.call("release", [self.t.keys.lock(agent_id)], [token]))
        except MemoryAPIException:
            log.warning("could not release the maintenance lease of %s; it expires by itself", agent_id)

    # -- one agent -------------------------------------------------------------------------------
    def _maintain(self, agent_id: str, lease: "_Lease", report: MaintenanceReport) -> None:
        report.healed += self._heal(agent_id)
        newest, last_read_step = self._access_state(agent_id)
        stm_cfg, im_cfg = self.config.stm_config, self.config.im_config
        for batch in self._victims(self.t.stm, agent_id, stm_cfg.memory_limit, stm_cfg.ttl,
                                   stm_cfg.low_watermark, newest, last_read_step):
            lease.renew()
            report.stm_to_im += self._stm_to_im(agent_id, batch)
        for batch in self._victims(self.t.im, agent_id, im_cfg.memory_limit, im_cfg.ttl,
                                   im_cfg.low_watermark, newest, last_read_step):
            lease.renew()
            report.im_to_ltm += self._im_to_ltm(agent_id, batch)
        lease.renew()
        promoted, flushed = self._ltm_reads(agent_id)
        report.ltm_to_im += promoted
        report.reads_flushed += flushed

    def _access_state(self, agent_id: str) -> tuple[float, dict[str, float]]:
        """The agent's newest step, and the step at which each read memory was last read."""
        pipe = self.t.client.pipeline(transaction=False)
        pipe.hget(self.t.keys.meta(agent_id), "newest")
        pipe.hgetall(self.t.keys.seen(agent_id))
        newest, seen = self.t.redis(pipe.execute)
        last_read_step = {}
        for memory_id, value in seen.items():
            _, step = parse_seen(value)
            if step is not None:
                last_read_step[memory_id.decode()] = float(step)
        return float(newest or 0), last_read_step

    def _victims(
        self,
        tier: RedisTier,
        agent_id: str,
        limit: int,
        ttl: float,
        low_watermark: float,
        newest: float,
        last_read_step: dict[str, float],
    ) -> Iterable[list[str]]:
        """Ids to demote from ``tier``, in batches: expired ones, then the excess by retention."""
        ids, steps, importances, since = tier.index_snapshot(agent_id)
        if not ids:
            return []
        expired = since < self.clock() - ttl
        chosen = list(np.flatnonzero(expired))
        alive = np.flatnonzero(~expired)
        if len(alive) > limit:
            excess = len(alive) - int(limit * low_watermark)
            step = steps[alive]
            read = np.asarray([last_read_step.get(ids[i], -np.inf) for i in alive])
            age = np.maximum(newest - np.maximum(step, read), 0.0)
            decay = self.config.memory_priority_decay
            retention = importances[alive] * decay ** (age / self.config.decay_steps)
            # lowest retention first; among equals the older step goes first
            order = np.lexsort((step, retention))[:excess]
            chosen += list(alive[order])
        batch_size = self.config.ltm_config.batch_size
        victims = [ids[i] for i in chosen]
        return [victims[i : i + batch_size] for i in range(0, len(victims), batch_size)]

    # -- the moves -----------------------------------------------------------------------------
    def _stm_to_im(self, agent_id: str, ids: list[str]) -> int:
        records = [at_resolution(r, "compressed") for r in self.t.stm.get_many(agent_id, ids)]
        if not records:
            return 0
        self.t.codec.prepare(record.contents_blob for record in records)
        self.t.im.move_in(self.t.stm, agent_id, records, self.clock())
        return len(records)

    def _journal(self, agent_id: str, direction: str, ids: list[str]) -> None:
        blob = msgpack.packb(ids, use_bin_type=True)
        self.t.redis(lambda: self.t.client.hset(self.t.keys.moves(agent_id), direction, blob))

    def _clear_journal(self, agent_id: str, direction: str) -> None:
        self.t.redis(lambda: self.t.client.hdel(self.t.keys.moves(agent_id), direction))

    def _im_to_ltm(self, agent_id: str, ids: list[str]) -> int:
        self._journal(agent_id, IM_TO_LTM, ids)
        moved = self._finish_im_to_ltm(agent_id, ids)
        self._clear_journal(agent_id, IM_TO_LTM)
        return moved

    def _finish_im_to_ltm(self, agent_id: str, ids: list[str]) -> int:
        records = [at_resolution(r, "abstract") for r in self.t.im.get_many(agent_id, ids, keep_payload=True)]
        if not records:
            return 0
        self.t.codec.prepare(record.contents_blob for record in records)
        self.t.ltm.put_many(agent_id, records, changed=self.t.ltm_stamp(agent_id))
        self.t.widen_ltm_bounds(agent_id, records)
        self.t.im.delete_many(agent_id, [r.memory_id for r in records], drop_access=True, moved_to="ltm")
        return len(records)

    def _ltm_to_im(self, agent_id: str, records: list[MemoryRecord]) -> int:
        """Promote: this move runs against the readers' order (STM, IM, then LTM), so it is
        bracketed by the agent's promotion counter (odd while it runs); a reader that saw the
        counter move while it read LTM reads again."""
        ids = [r.memory_id for r in records]
        self.t.mark_promotion(agent_id)
        self._journal(agent_id, LTM_TO_IM, ids)
        moved = self._finish_ltm_to_im(agent_id, records)
        self._clear_journal(agent_id, LTM_TO_IM)
        self.t.mark_promotion(agent_id)
        return moved

    def _finish_ltm_to_im(self, agent_id: str, records: list[MemoryRecord]) -> int:
        if not records:
            return 0
        self.t.im.put_many(agent_id, records, self.clock(), leaving="ltm")
        reads = {r.memory_id: r.retrieval_count for r in records}
        self.t.redis(lambda: self.t.client.hset(self.t.keys.reads(agent_id), mapping=reads))
        self.t.persist_redis()  # the rows' only durable copy is about to go
        self.t.ltm.delete_many(agent_id, list(reads), changed=self.t.ltm_stamp(agent_id))
        self.t.bump(agent_id)
        return len(records)

    def _heal(self, agent_id: str) -> int:
        """Finish the moves a crashed maintainer journaled for this agent."""
        journal = self.t.redis(lambda: self.t.client.hgetall(self.t.keys.moves(agent_id)))
        healed = 0
        for direction, blob in journal.items():
            direction = direction.decode()
            ids = msgpack.unpackb(blob, raw=False)
            if direction == IM_TO_LTM:
                healed += self._finish_im_to_ltm(agent_id, ids)
            elif direction == LTM_TO_IM:
                healed += self._finish_ltm_to_im(agent_id, self.t.ltm.get_many(agent_id, ids))
            self._clear_journal(agent_id, direction)
        if self.t.promotions(agent_id) % 2:  # a promotion died between its two marks
            self.t.mark_promotion(agent_id)
        if healed:
            log.info("healed %d interrupted moves of agent %s", healed, agent_id)
        return healed

    def _ltm_reads(self, agent_id: str) -> tuple[int, int]:
        """Promote often-read LTM memories to IM; flush the other read counts into SQL."""
        pending_key = self.t.keys.ltm_reads(agent_id)
        pending_raw = self.t.redis(lambda: self.t.client.hgetall(pending_key))
        if not pending_raw:
            return 0, 0
        pending = {k.decode(): int(v) for k, v in pending_raw.items()}
        ids = list(pending)
        seen_raw = self.t.redis(lambda: self.t.client.hmget(self.t.keys.seen(agent_id), ids))
        rows = {r.memory_id: r for r in self.t.ltm.get_many(agent_id, ids)}
        since_arrival = self.t.ltm.reads_since_arrival(agent_id, ids)
        promote, flush = [], {}
        for memory_id, seen in zip(ids, seen_raw):
            row = rows.get(memory_id)
            if row is None:
                continue  # already promoted or cleared
            row = row.with_access(row.retrieval_count + pending[memory_id], seen)
            if since_arrival.get(memory_id, 0) + pending[memory_id] >= self.config.ltm_config.promote_threshold:
                promote.append(row)
            else:
                flush[memory_id] = (pending[memory_id], row.last_access_time, row.last_access_step)
        promoted = self._ltm_to_im(agent_id, promote) if promote else 0
        self.t.ltm.add_reads(agent_id, flush)
        # Only subtract what was flushed: reads counted meanwhile by other processes stay pending.
        pipe = self.t.client.pipeline(transaction=True)
        for memory_id, count in pending.items():
            pipe.hincrby(pending_key, memory_id, -count)
        counts = self.t.redis(pipe.execute)
        drained = [memory_id for memory_id, left in zip(pending, counts) if int(left) <= 0]
        if drained:
            self.t.redis(lambda: self.t.client.hdel(pending_key, *drained))
            flushed_seen = [m for m in drained if m in flush]
            if flushed_seen:
                self.t.redis(lambda: self.t.client.hdel(self.t.keys.seen(agent_id), *flushed_seen))
        return promoted, len(flush)
