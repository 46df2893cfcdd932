"""Maintenance: who stays in each tier, and moves that never lose a memory.

Per agent, under a lease in Redis so only one process maintains an agent at a time:

1. heal: finish any IM<->LTM move a crashed process left in the agent's journal;
2. STM -> IM: memories past the STM TTL, then, over capacity, the lowest retention scores;
3. IM -> LTM: the same with the IM limits;
4. LTM reads: memories read at least ``promote_threshold`` times since they last arrived in LTM
   come back to IM; the other counts are flushed into their SQL rows.

Retention score = importance x decay ** (steps behind the agent's newest step / decay_steps),
where a read refreshes a memory's age to the step at which it was read. Scores compare as their
logarithms, so none underflows and each tier keeps an index of them that aging never changes
(the retention keys, tiers/lua/lib.lua): a run reads the few lowest, not the tier; among equal
scores, Redis's order of the ids decides.

STM -> IM is one atomic Lua call. IM <-> LTM spans two stores: the ids are journaled in Redis,
the destination is written, then the source deleted, then the journal cleared (invariant 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from memory._engine.derive import TIER_RESOLUTION, at_resolution
from memory.config import MemoryConfig
from tiers.async_bridge import pause
from tiers.base import FastTier
from tiers.errors import MemoryAPIException, MemoryMaintenanceException
from tiers.record import MemoryRecord
from tiers.tierset import TierSet

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

    COUNTS = ("agents", "stm_to_im", "im_to_ltm", "ltm_to_im", "healed", "reads_flushed")

    def add(self, other: MaintenanceReport) -> None:
        for name in self.COUNTS:
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

    def __init__(self, maintainer: Maintainer, agent_id: str, token: str):
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
        # what every run of this maintainer did (forced and automatic), read by totals()
        self._totals = dict.fromkeys(("runs", "failed", *MaintenanceReport.COUNTS, "busy"), 0)
        self._seconds = 0.0
        self._totals_lock = threading.Lock()

    def run(self, agent_ids: Iterable[str], only_if_needed: bool = False,
            progress: Callable[[str], None] | None = None) -> MaintenanceReport:
        """Maintain each agent; ``only_if_needed`` first asks (one round trip) whether there is work;
        ``progress`` is called with each agent's id once it is done (from a worker thread when
        there are several workers).

        After a failure no further agent is started; the exception carries what was done.
        """
        agents = list(agent_ids)
        parts = {agent_id: MaintenanceReport() for agent_id in agents}
        started = time.perf_counter()
        failures: list[MemoryAPIException] = []
        if self.workers > 1 and len(agents) > 1:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="tiermem-maintenance") as pool:
                futures = [pool.submit(self._one, agent_id, parts[agent_id], only_if_needed, progress) for agent_id in agents]
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
                    self._one(agent_id, parts[agent_id], only_if_needed, progress)
                except MemoryAPIException as exc:
                    failures.append(exc)
                    break
        report = MaintenanceReport()
        for part in parts.values():
            report.add(part)
        report.seconds = time.perf_counter() - started
        self._count(report, failed=bool(failures))
        if failures:
            raise MemoryMaintenanceException(f"maintenance stopped: {failures[0]}", report) from failures[0]
        return report

    def _count(self, report: MaintenanceReport, failed: bool) -> None:
        with self._totals_lock:
            totals = self._totals
            totals["runs"] += 1
            totals["failed"] += failed
            for name in MaintenanceReport.COUNTS:
                totals[name] += getattr(report, name)
            totals["busy"] += len(report.busy)
            self._seconds += report.seconds

    def totals(self) -> dict[str, Any]:
        """What every run so far moved, in all: ``runs`` (``failed`` of them stopped by an
        error), the report's counts added up, ``busy`` agents skipped, ``moved`` and ``seconds``."""
        with self._totals_lock:
            totals = dict(self._totals)
            seconds = self._seconds
        return {**totals, "moved": totals["stm_to_im"] + totals["im_to_ltm"] + totals["ltm_to_im"], "seconds": seconds}

    def _one(self, agent_id: str, report: MaintenanceReport, only_if_needed: bool,
             progress: Callable[[str], None] | None) -> None:
        self._maintain_if_free(agent_id, report, only_if_needed)
        if progress is not None:
            progress(agent_id)

    def _maintain_if_free(self, agent_id: str, report: MaintenanceReport, only_if_needed: bool) -> None:
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

    def heal(self, agent_ids: Iterable[str]) -> int:
        """Finish the moves journaled for these agents (step 1 of maintenance alone)."""
        healed = 0
        for agent_id in agent_ids:
            with self.holding(agent_id, wait=self.config.maintenance_lock_timeout):
                healed += self._heal(agent_id)
        return healed

    def _has_work(self, agent_id: str) -> bool:
        """Over capacity, past a TTL, journaled moves or pending LTM reads?"""
        probe = self.t.work_probe(agent_id)
        now = self.clock()
        stm, im = self.config.stm_config, self.config.im_config
        bounds = ((stm.memory_limit, stm.ttl), (im.memory_limit, im.ttl))
        for count, oldest, (limit, ttl) in zip(probe.counts, probe.oldest, bounds):
            if count > limit or (oldest is not None and oldest < now - ttl):
                return True
        return probe.pending

    # -- the lease -----------------------------------------------------------------------------
    def _lease_ms(self) -> int:
        return int(self.config.maintenance_lock_timeout * 1000)

    def _acquire(self, agent_id: str) -> str | None:
        return self.t.leases.acquire(agent_id, self._lease_ms())

    @contextmanager
    def holding(self, agent_id: str, wait: float) -> Iterator[None]:
        """Hold an agent's maintenance lease (so no maintainer moves its memories) for a block,
        waiting up to ``wait`` seconds for one that is running to finish."""
        deadline = time.monotonic() + wait
        token = self._acquire(agent_id)
        wait_for = 0.002  # doubling to 50 ms: a short holder (a delete) is waited for briefly
        while token is None:
            if time.monotonic() >= deadline:
                raise MemoryMaintenanceException(f"agent {agent_id} is being maintained by another process")
            pause(wait_for)
            wait_for = min(2 * wait_for, 0.05)
            token = self._acquire(agent_id)
        try:
            yield
        finally:
            self._release(agent_id, token)

    def _renew(self, agent_id: str, token: str) -> bool:
        return self.t.leases.renew(agent_id, token, self._lease_ms())

    def _release(self, agent_id: str, token: str) -> None:
        try:
            self.t.leases.release(agent_id, token)
        except MemoryAPIException:
            log.warning("could not release the maintenance lease of %s; it expires by itself", agent_id)

    # -- one agent -------------------------------------------------------------------------------
    def _maintain(self, agent_id: str, lease: _Lease, report: MaintenanceReport) -> None:
        report.healed += self._heal(agent_id)
        rate, last_read_step = self.t.meta.retention_state(agent_id)
        if rate != self.t.stm.retention_rate:  # made before the keys existed, or with other settings
            self.t.rebuild_retention(agent_id)
        stm_cfg, im_cfg = self.config.stm_config, self.config.im_config
        for batch in self._victims(self.t.stm, agent_id, stm_cfg.memory_limit, stm_cfg.ttl,
                                   stm_cfg.low_watermark, last_read_step):
            lease.renew()
            report.stm_to_im += self._stm_to_im(agent_id, batch)
        for batch in self._victims(self.t.im, agent_id, im_cfg.memory_limit, im_cfg.ttl,
                                   im_cfg.low_watermark, last_read_step):
            lease.renew()
            report.im_to_ltm += self._im_to_ltm(agent_id, batch)
        lease.renew()
        promoted, flushed = self._ltm_reads(agent_id)
        report.ltm_to_im += promoted
        report.reads_flushed += flushed

    def _victims(
        self,
        tier: FastTier,
        agent_id: str,
        limit: int,
        ttl: float,
        low_watermark: float,
        last_read_step: dict[str, float],
    ) -> list[list[str]]:
        """Ids to demote from ``tier``, in batches: expired ones, then the excess by retention."""
        expired, excess, lowest, read = tier.demotion_candidates(
            agent_id, self.clock() - ttl, limit, int(limit * low_watermark), list(last_read_step))
        victims = list(expired)
        if excess:
            keys = dict(lowest)
            rate = self.config.retention_rate
            for memory_id, key, step in read:  # a read makes a memory as young as the agent was then
                keys[memory_id] = key + max(0.0, last_read_step[memory_id] - step) * rate
            for memory_id in expired:
                keys.pop(memory_id, None)
            victims += sorted(keys, key=keys.__getitem__)[:excess]  # stable: Redis's order among equals
        batch_size = self.config.ltm_config.batch_size
        return [victims[i : i + batch_size] for i in range(0, len(victims), batch_size)]

    # -- the moves -----------------------------------------------------------------------------
    def _stm_to_im(self, agent_id: str, ids: list[str]) -> int:
        records = [at_resolution(r, TIER_RESOLUTION["im"]) for r in self.t.stm.get_many(agent_id, ids)]
        if not records:
            return 0
        self.t.codec.prepare(record.contents_blob for record in records)
        self.t.im.move_in(self.t.stm, agent_id, records, self.clock())
        return len(records)

    def _im_to_ltm(self, agent_id: str, ids: list[str]) -> int:
        self.t.journal.write(agent_id, IM_TO_LTM, ids)
        moved = self._finish_im_to_ltm(agent_id, ids)
        self.t.journal.clear(agent_id, IM_TO_LTM)
        return moved

    def _finish_im_to_ltm(self, agent_id: str, ids: list[str]) -> int:
        records = [at_resolution(r, TIER_RESOLUTION["ltm"]) for r in self.t.im.get_many(agent_id, ids, keep_payload=True)]
        if not records:
            return 0
        self.t.codec.prepare(record.contents_blob for record in records)
        waiting = (self.t.pending_text_among(agent_id, [r.memory_id for r in records])  # LTM queues them now
                   if self.config.search_config.text_embedding != "off" else set())
        self.t.ltm.put_many(agent_id, records, changed=self.t.ltm_stamp(agent_id), text_pending=waiting)
        self.t.widen_ltm_bounds(agent_id, records)
        self.t.im.delete_many(agent_id, [r.memory_id for r in records], drop_access=True, moved_to="ltm")
        return len(records)

    def _ltm_to_im(self, agent_id: str, records: list[MemoryRecord]) -> int:
        """Promote: this move runs against the readers' order (STM, IM, then LTM), so it is
        bracketed by the agent's promotion counter (odd while it runs); a reader that saw the
        counter move while it read LTM reads again."""
        ids = [r.memory_id for r in records]
        self.t.meta.begin_promotion(agent_id)
        self.t.journal.write(agent_id, LTM_TO_IM, ids)
        moved = self._finish_ltm_to_im(agent_id, records)
        self.t.journal.clear(agent_id, LTM_TO_IM)
        self.t.meta.end_promotion(agent_id)
        return moved

    def _finish_ltm_to_im(self, agent_id: str, records: list[MemoryRecord]) -> int:
        if not records:
            return 0
        waiting = set(self.t.ltm.text_pending(agent_id, among=[r.memory_id for r in records]))
        for embed_text in (True, False):  # those still waiting for a text vector join Redis's queue
            batch = [r for r in records if (r.memory_id in waiting) == embed_text]
            self.t.im.put_many(agent_id, batch, self.clock(), leaving="ltm", embed_text=embed_text)
        reads = {r.memory_id: r.retrieval_count for r in records}
        self.t.meta.set_read_counts(agent_id, reads)
        self.t.persist_redis()  # the rows' only durable copy is about to go
        self.t.ltm.delete_many(agent_id, list(reads), changed=self.t.ltm_stamp(agent_id))
        self.t.meta.bump(agent_id)
        return len(records)

    def _heal(self, agent_id: str) -> int:
        """Finish the moves a crashed maintainer journaled for this agent."""
        healed = 0
        for direction, ids in self.t.journal.entries(agent_id).items():
            if direction == IM_TO_LTM:
                healed += self._finish_im_to_ltm(agent_id, ids)
            elif direction == LTM_TO_IM:
                healed += self._finish_ltm_to_im(agent_id, self.t.ltm.get_many(agent_id, ids))
            self.t.journal.clear(agent_id, direction)
        if self.t.meta.promotions(agent_id) % 2:  # a promotion died between its two marks
            self.t.meta.end_promotion(agent_id)
        if healed:
            log.info("healed %d interrupted moves of agent %s", healed, agent_id)
        return healed

    def _ltm_reads(self, agent_id: str) -> tuple[int, int]:
        """Promote often-read LTM memories to IM; flush the other read counts into SQL."""
        pending, seen_raw = self.t.meta.pending_ltm_reads(agent_id)
        if not pending:
            return 0, 0
        ids = list(pending)
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
        self.t.meta.drain_ltm_reads(agent_id, pending, list(flush))
        return promoted, len(flush)
