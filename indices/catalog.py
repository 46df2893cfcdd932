"""Each process's in-memory indices, kept current with every process's writes (invariant 5).

Every write to a tier appends to the agent's change log in Redis in the same call
(tiers/keys.py). Before a search, the agent's index reads the log from where it stopped and
applies it: the memories it names are re-read from their tier (only their derived fields, never
their payloads), so a query sees every write that finished before it began, from any process.
An index that fell behind the log, or meets an agent that was cleared, rebuilds from the tiers:
indices are derived data (invariant 2), and `rebuild` is also the command that does it on demand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from indices.keywords import KeywordIndex
from indices.snapshot import STAMP_MARGIN, SnapshotStore
from indices.tier_index import TierIndex
from tiers.bookkeeping import Stamp, stamp_of
from tiers.record import TIERS
from tiers.tierset import TierSet

CHANGES_PER_READ = 1000  # log entries fetched per round trip while catching up


@dataclass
class IndexSettings:
    state_dim: int
    cell_size: float
    exact_limit: int
    max_agents: int = 1024  # agents whose indices one process keeps (least recently used leave)
    memory_budget: int = 512 << 20  # bytes the indices may hold in all (least recently used leave)
    snapshot_dir: str | None = None  # where LTM indices are persisted (None: never)
    snapshot_min: int = 1000  # LTM memories from which an agent's LTM index is worth a file
    attribute_paths: tuple[str, ...] | None = None  # contents paths the attribute index keeps (None: all)


@dataclass
class AgentIndex:
    agent_id: str
    tiers: dict[str, TierIndex]
    position: int = 0  # the change-log seq applied so far
    stamp: Stamp | None = None  # the agent's stamp when the log was last read
    nbytes: int = 0  # memory it holds, as last estimated
    lock: threading.Lock = field(default_factory=threading.Lock)
    ltm_saved: int | None = None  # the LTM stamp of the LTM index file last saved or loaded
    restorable: bool = True  # may start from the files a closing engine saved (not when rebuilding)


class IndexCatalog:
    def __init__(self, tiers: TierSet, settings: IndexSettings):
        self.t = tiers
        self.settings = settings
        self._agents: OrderedDict[str, AgentIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._held = 0  # sum of the kept indices' nbytes
        self.evicted = 0  # indices dropped to stay within the agent count and the memory budget
        self.snapshots = None if settings.snapshot_dir is None else SnapshotStore(settings.snapshot_dir)

    def current(self, agent_id: str) -> AgentIndex:
        """The agent's index, caught up with the change log. Hold ``.lock`` while using it."""
        index = self.known(agent_id)
        with index.lock:
            self._catch_up(index)
        return index

    def known(self, agent_id: str) -> AgentIndex:
        """The agent's index as this process last caught it up (possibly never: position -1).
        A caller that answers from it confirms it was current by reading the change log from
        its position in the same round trip (TierSet.fetch) and handing the answer to :meth:`absorb`."""
        with self._lock:
            index = self._agents.get(agent_id)
            if index is None:
                index = self._agents[agent_id] = AgentIndex(agent_id, self._empty(), position=-1)
                self._evict(keep=agent_id)
            self._agents.move_to_end(agent_id)
        return index

    def stats(self) -> dict[str, int]:
        """What this process's indices hold: agents, estimated bytes, the budget, evictions."""
        with self._lock:
            return {"agents": len(self._agents), "bytes": self._held, "budget_bytes": self.settings.memory_budget,
                    "evicted": self.evicted}

    def _account(self, index: AgentIndex) -> None:
        """Take an index's new size into the total and keep within the budget (least recently
        used first; never the index just used, however large)."""
        size = sum(tier.nbytes() for tier in index.tiers.values())
        with self._lock:
            if self._agents.get(index.agent_id) is index:
                self._held += size - index.nbytes
            index.nbytes = size
            self._evict(keep=index.agent_id)

    def _evict(self, keep: str) -> None:
        """(With ``_lock`` held.)"""
        agents = self._agents
        while len(agents) > 1 and (len(agents) > self.settings.max_agents or self._held > self.settings.memory_budget):
            oldest = next(iter(agents))
            if oldest == keep:
                agents.move_to_end(keep)
                oldest = next(iter(agents))
            self._held -= agents.pop(oldest).nbytes
            self.evicted += 1

    def absorb(self, index: AgentIndex, answer: Any) -> int:
        """Apply a change-log answer; returns how many entries were new (0: the index was
        current when the log was read), or -1 when the index had to be loaded again."""
        seq, version, entries, incarnation = answer
        seq = int(seq)
        stamp = stamp_of(version, incarnation)
        lost = index.stamp is not None and stamp.incarnation != index.stamp.incarnation
        index.stamp = stamp
        if lost or _missed(index.position, seq, entries):
            self._load(index, seq)  # fell behind the log, the agent was cleared, or Redis lost its keys
            self._account(index)
            return -1
        if entries:
            self._apply(index, entries)
            self._account(index)
        return len(entries)

    def forget(self) -> None:
        """Drop every agent's index (Redis lost the deployment's data): each is built again from
        the tiers when next asked for."""
        with self._lock:
            self._agents.clear()
            self._held = 0

    def rebuild(self, agent_id: str) -> AgentIndex:
        """Build the agent's index again from the tiers' contents."""
        with self._lock:
            old = self._agents.pop(agent_id, None)
            self._held -= old.nbytes if old is not None else 0
            index = self._agents[agent_id] = AgentIndex(agent_id, self._empty(), position=-1, restorable=False)
        with index.lock:
            self._catch_up(index)
        return index

    def keyword_index(self, index: AgentIndex, tier: str) -> KeywordIndex:
        """(With ``index.lock`` held.) The tier's keyword index, made from the tier's contents
        the first time a keyword search needs it, then kept current like the rest."""
        return index.tiers[tier].with_keywords((row[0], row[6]) for row in self._derived(index.agent_id, tier, None))

    def ltm_alone(self, agent_id: str) -> TierIndex:
        """The agent's LTM index without Redis (a degraded read): the one this process keeps,
        as it last caught it up, or one built from SQL now and not kept."""
        with self._lock:
            index = self._agents.get(agent_id)
        if index is not None and index.position >= 0:
            return index.tiers["ltm"]
        ltm = self._empty()["ltm"]
        for row in self._derived(agent_id, "ltm", None):
            ltm.upsert(*row)
        return ltm

    # -- catching up --------------------------------------------------------------------------
    def _catch_up(self, index: AgentIndex) -> None:
        while True:
            applied = self.absorb(index, self.t.changes(index.agent_id, index.position, CHANGES_PER_READ))
            if 0 <= applied < CHANGES_PER_READ:
                return

    def _apply(self, index: AgentIndex, entries: list[Any]) -> None:
        latest: dict[tuple[str, str], str] = {}  # (tier, id) -> the last operation logged
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2]))
            tier, op = values[b"tier"].decode(), values[b"op"].decode()
            left = values[b"from"].decode() if b"from" in values else None  # a move: one entry, two tiers
            for memory_id in values[b"ids"].decode().split(" "):
                if left is not None:
                    latest[(left, memory_id)] = "del"
                latest[(tier, memory_id)] = op
            index.position = int(entry_id.decode().partition("-")[2])
        refresh: dict[str, list[str]] = {}
        for (tier, memory_id), op in latest.items():
            if op == "del":
                index.tiers[tier].remove(memory_id)
            else:
                refresh.setdefault(tier, []).append(memory_id)
        for tier, ids in refresh.items():
            found = set()
            for row in self._derived(index.agent_id, tier, ids):
                index.tiers[tier].upsert(*row)
                found.add(row[0])
            for memory_id in ids:
                if memory_id not in found:  # gone again since: a later entry says where
                    index.tiers[tier].remove(memory_id)

    def _load(self, index: AgentIndex, seq: int) -> None:
        index.tiers = self._empty()
        if index.position < 0 and index.restorable and self._restore(index):
            self._load_ltm(index)
            return  # at the file's position: the caller's next read of the log brings it up to date
        index.tiers = self._empty()
        self._load_ltm(index)
        for tier in ("stm", "im"):
            for row in self._derived(index.agent_id, tier, None):
                index.tiers[tier].upsert(*row)
        index.position = seq

    def _restore(self, index: AgentIndex) -> bool:
        """STM's and IM's indices from the file an engine saved on closing, if it still holds."""
        if self.snapshots is None or index.stamp is None or index.stamp.incarnation is None:
            return False
        _, epoch = self.t.meta.ltm_epoch(index.agent_id)
        position = self.snapshots.load_redis(index.agent_id, index.stamp.incarnation, epoch,
                                             {tier: index.tiers[tier] for tier in ("stm", "im")})
        if position is None:
            return False
        index.position = position
        return True

    def _load_ltm(self, index: AgentIndex) -> None:
        """From the persisted file plus what changed since, or from SQL (then saved)."""
        t, agent_id, ltm = self.t, index.agent_id, index.tiers["ltm"]
        if self.snapshots is None:
            for row in self._derived(agent_id, "ltm", None):
                ltm.upsert(*row)
            return
        stamp, epoch = t.meta.ltm_epoch(agent_id)
        saved = self.snapshots.load(agent_id, epoch, ltm)
        if saved is None:
            for row in self._derived(agent_id, "ltm", None):
                ltm.upsert(*row)
            changed = True
        else:
            rows, deleted = t.ltm.changed_since(agent_id, max(0, saved - STAMP_MARGIN))
            for memory_id in deleted:
                ltm.remove(memory_id)
            for row in rows:
                ltm.upsert(*row)
            changed = stamp != saved  # else only the margin's rows were read again
            index.ltm_saved = saved
        if changed and len(ltm) >= self.settings.snapshot_min:
            self.snapshots.save(agent_id, ltm, stamp, epoch)
            index.ltm_saved = stamp

    def save(self) -> int:
        """Persist every index this process holds, caught up first (an engine closing): a
        restart loads them and reads only the change log since. How many agents were saved."""
        if self.snapshots is None:
            return 0
        with self._lock:
            held = [index for index in self._agents.values() if index.position >= 0]
        saved = 0
        for index in held:
            with index.lock:
                stamp, epoch = self.t.meta.ltm_epoch(index.agent_id)  # before catching up: see snapshot.py
                self._catch_up(index)
                tiers = index.tiers
                if index.stamp is None or index.stamp.incarnation is None:
                    continue
                if len(tiers["stm"]) + len(tiers["im"]) >= self.settings.snapshot_min:
                    self.snapshots.save_redis(index.agent_id, {"stm": tiers["stm"], "im": tiers["im"]},
                                              index.position, index.stamp.incarnation, epoch)
                    saved += 1
                if index.ltm_saved != stamp and len(tiers["ltm"]) >= self.settings.snapshot_min:
                    self.snapshots.save(index.agent_id, tiers["ltm"], stamp, epoch)
                    index.ltm_saved = stamp
        return saved

    def _derived(self, agent_id: str, tier: str, ids: list[str] | None) -> Iterable[tuple[Any, ...]]:
        for chunk in getattr(self.t, tier).derived(agent_id, ids):
            yield from chunk

    def _empty(self) -> dict[str, TierIndex]:
        s = self.settings
        return {tier: TierIndex(tier, s.state_dim, s.cell_size, s.exact_limit, s.attribute_paths) for tier in TIERS}


def _missed(position: int, seq: int, entries: list[Any]) -> bool:
    """Whether the log no longer holds everything after ``position`` (see changes.lua)."""
    if position < 0:
        return True  # never loaded
    if not entries:
        return seq != position
    first_id, fields = entries[0]
    values = dict(zip(fields[::2], fields[1::2]))
    return int(first_id.decode().partition("-")[2]) - int(values[b"n"]) != position
