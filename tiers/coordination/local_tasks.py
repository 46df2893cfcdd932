"""Task queues on the embedded engine: RedisTaskQueue's contract, kept in this process's memory.

The embedded engine belongs to one process (its data directory is locked), so its task queues need
not go through Redis commands: on fakeredis a claim interprets seven or eight commands inside a
Lua script (~0.19 ms), where heaps under a lock take a few microseconds. The contract is the one
the Lua scripts keep (the same tests run on both): claims by priority then in the order added,
each task held by one agent at a time, a lease that lapses ``lease`` ms after the claimer's last
heartbeat, completion by the claimer only, results and completion counts, and completed tasks
forgotten once their retention ends (FORGET_PER_CALL of them by each claim and completion, all of
them before a snapshot, so the snapshot holds none past their retention).

Memories on one embedded server with one key prefix share a team's queue, as they would share its
keys on Redis. The queue is written into the team's Redis keys (the layout of tiers/coordination/keys.py)
just before each snapshot of the embedded server, and read back from them (then dropped, the
process holding the only live copy) when a queue is first used after a restart: tasks survive a
clean restart exactly as the snapshot's other keys do. Agents' heartbeats stay Redis keys (the
coordinator writes them); a claim reads one only when a lease has run out.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from typing import Any

import msgpack

from tiers.coordination.agents import TeamAgents
from tiers.coordination.context import Context
from tiers.coordination.keys import TeamTaskKeys
from tiers.coordination.tasks import FORGET_PER_CALL
from tiers.failures import writing

_SEQ_SHIFT = 1 << 40  # queue score = (1000 - priority) * 2^40 + seq, as in the ADD script


class _TeamTasks:
    """One team's tasks; every method runs with ``lock`` held by the caller."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: dict[str, bytes] = {}  # task id -> msgpack body (immutable)
        self.kinds: dict[str, str] = {}  # task id -> task type
        self.scores: dict[str, int] = {}  # task id -> queue score
        self.seq = 0
        self.queues: dict[str, list[tuple[int, str]]] = {}  # type -> heap of (score, id), pending only
        self.leases: dict[str, list[tuple[int, str]]] = {}  # type -> heap of (deadline, id); stale ones skipped
        self.deadlines: dict[str, int] = {}  # claimed task id -> its lease deadline (unix ms)
        self.claims: dict[str, str] = {}  # claimed task id -> claimer
        self.attempts: Counter[str] = Counter()
        self.results: dict[str, bytes] = {}
        self.counts: Counter[str] = Counter()  # total | agent:<id> | type:<type> -> completed
        self.done: dict[str, int] = {}  # completed task id -> when its retention ends (unix ms)
        self.forgets: list[tuple[int, str]] = []  # heap of (retention end, id); stale ones skipped
        self.now_ms = 0  # the latest time a call brought: a snapshot forgets what ended by then
        self.flushed_types: set[str] = set()  # types whose keys the last flush wrote

    def enqueue(self, task_id: str) -> None:
        heapq.heappush(self.queues.setdefault(self.kinds[task_id], []), (self.scores[task_id], task_id))

    def lease(self, task_id: str, deadline: int) -> None:
        self.deadlines[task_id] = deadline
        heapq.heappush(self.leases.setdefault(self.kinds[task_id], []), (deadline, task_id))

    def keep_until(self, task_id: str, ends_ms: int) -> None:
        self.done[task_id] = ends_ms
        heapq.heappush(self.forgets, (ends_ms, task_id))

    def forgotten(self, task_id: str, now_ms: int) -> bool:
        """Whether the task is completed and past its retention (whether or not it is dropped yet)."""
        ends = self.done.get(task_id)
        return ends is not None and ends <= now_ms

    def drop(self, task_id: str) -> None:
        """Forget a completed task: its body, queue order, attempts and result (the counts stay)."""
        for mapping in (self.done, self.bodies, self.kinds, self.scores, self.attempts, self.results):
            mapping.pop(task_id, None)

    def forget(self, now_ms: int, limit: int | None = FORGET_PER_CALL) -> None:
        """Drop up to ``limit`` (None: every) completed task whose retention ended by ``now_ms``, oldest first."""
        self.now_ms = max(self.now_ms, now_ms)
        heap, dropped = self.forgets, 0
        while heap and heap[0][0] <= now_ms and (limit is None or dropped < limit):
            ends, task_id = heapq.heappop(heap)
            if self.done.get(task_id) == ends:
                self.drop(task_id)
                dropped += 1

    def lapse(self, task_type: str, now_ms: int, lease_ms: int, heartbeat: Any) -> None:
        """Return the type's lapsed leases to the queue, or extend them from a later heartbeat."""
        heap = self.leases.get(task_type)
        while heap and heap[0][0] <= now_ms:
            deadline, task_id = heapq.heappop(heap)
            if self.deadlines.get(task_id) != deadline:
                continue  # completed, or leased again since
            beat = heartbeat(self.claims[task_id])
            if beat is not None and beat + lease_ms > now_ms:
                self.lease(task_id, int(beat) + lease_ms)
            else:
                del self.deadlines[task_id], self.claims[task_id]
                self.enqueue(task_id)

    # -- the team's Redis keys, written before a snapshot and read after a restart -------------
    def load(self, client: Any, keys: TeamTaskKeys) -> None:
        self.bodies = {k.decode(): v for k, v in client.hgetall(keys.tasks).items()}
        self.kinds = {task_id: _task_type(body) for task_id, body in self.bodies.items()}
        self.scores = {k.decode(): int(float(v)) for k, v in client.hgetall(keys.order).items()}
        self.seq = int(client.get(keys.seq) or 0)
        self.claims = {k.decode(): v.decode() for k, v in client.hgetall(keys.claims).items()}
        self.attempts = Counter({k.decode(): int(v) for k, v in client.hgetall(keys.attempts).items()})
        self.results = {k.decode(): v for k, v in client.hgetall(keys.results).items()}
        self.counts = Counter({k.decode(): int(v) for k, v in client.hgetall(keys.stats).items()})
        for member, ends in client.zrange(keys.done, 0, -1, withscores=True):
            self.keep_until(member.decode(), int(ends))
        self.flushed_types = {kind.decode() for kind in client.smembers(keys.types)}
        for kind in self.flushed_types:
            self.queues[kind] = [(int(score), m.decode()) for m, score in client.zrange(keys.queue(kind), 0, -1, withscores=True)]
            heapq.heapify(self.queues[kind])
            for member, deadline in client.zrange(keys.leases(kind), 0, -1, withscores=True):
                task_id = member.decode()
                if task_id in self.claims:
                    self.lease(task_id, int(deadline))
        self.drop_keys(client, keys)

    def drop_keys(self, client: Any, keys: TeamTaskKeys) -> None:
        per_type = [name for kind in self.flushed_types for name in (keys.queue(kind), keys.leases(kind), keys.leases_due(kind))]
        client.delete(keys.tasks, keys.order, keys.seq, keys.types, keys.claims, keys.attempts, keys.results, keys.stats,
                      keys.done, *per_type)

    def flush(self, client: Any, keys: TeamTaskKeys) -> None:
        self.forget(self.now_ms, limit=None)
        pipe = client.pipeline(transaction=True)
        self.drop_keys(pipe, keys)
        for key, mapping in ((keys.tasks, self.bodies), (keys.order, self.scores), (keys.claims, self.claims),
                             (keys.attempts, self.attempts), (keys.results, self.results), (keys.stats, self.counts)):
            if mapping:
                pipe.hset(key, mapping=dict(mapping))
        if self.done:
            pipe.zadd(keys.done, self.done)
        if self.seq:
            pipe.set(keys.seq, self.seq)
        kinds = set(self.kinds.values())
        if kinds:
            pipe.sadd(keys.types, *kinds)
        for kind, heap in self.queues.items():
            if heap:
                pipe.zadd(keys.queue(kind), {task_id: score for score, task_id in heap})
        for kind, heap in self.leases.items():
            held = {task_id: deadline for deadline, task_id in heap if self.deadlines.get(task_id) == deadline}
            if held:
                pipe.zadd(keys.leases(kind), held)
                pipe.set(keys.leases_due(kind), min(held.values()))
        pipe.execute()
        self.flushed_types = kinds


def _task_type(body: bytes) -> str:
    """The type a task body (msgpack, memory/team/coordinator.py) names."""
    return msgpack.unpackb(body, raw=False, strict_map_key=False)["task_type"]


def _team(server: Any, client: Any, keys: TeamTaskKeys) -> _TeamTasks:
    """The team's queue on this embedded server, read from its keys the first time."""
    teams = server.local("task-queues", lambda: _flushed_before_saves(server))

    def loaded() -> _TeamTasks:
        team = teams[keys.root] = _TeamTasks()
        with team.lock:
            writing("redis", lambda: team.load(client, keys))
        return team

    return server.local(("task-queue", keys.root), loaded)


def _flushed_before_saves(server: Any) -> dict[str, _TeamTasks]:
    """The server's team queues by key root, written into their keys before every snapshot."""
    teams: dict[str, _TeamTasks] = {}

    def flush(client: Any) -> None:
        for root, team in list(teams.items()):
            with team.lock:
                team.flush(client, TeamTaskKeys(root))

    server.before_save(flush)
    return teams


class LocalTaskQueue:
    """One team's task queue in this process (RedisTaskQueue's methods and contract)."""

    def __init__(self, context: Context, server: Any, team_id: str):
        self.keys = context.keys.team(team_id)
        self._agents = TeamAgents(context, team_id)
        self._team = _team(server, context.client, self.keys)

    def add(self, task_id: str, body: bytes, priority: int, task_type: str, now_ms: int) -> bool:
        team = self._team
        with team.lock:
            if team.forgotten(task_id, now_ms):
                team.drop(task_id)
            if task_id in team.bodies:
                return False
            team.seq += 1
            team.bodies[task_id] = body
            team.kinds[task_id] = task_type
            team.scores[task_id] = (1000 - priority) * _SEQ_SHIFT + team.seq
            team.enqueue(task_id)
        return True

    def claim(
        self, task_type: str, agent: str, now_ms: int, lease_ms: int, count: int, beat: bool
    ) -> list[tuple[bytes, int]]:
        team = self._team
        with team.lock:
            team.forget(now_ms)
            team.lapse(task_type, now_ms, lease_ms, self._agents.last_beat)
            heap = team.queues.get(task_type)
            claimed: list[tuple[bytes, int]] = []
            while heap and len(claimed) < count:
                _, task_id = heapq.heappop(heap)
                team.claims[task_id] = agent
                team.lease(task_id, now_ms + lease_ms)
                team.attempts[task_id] += 1
                claimed.append((team.bodies[task_id], team.attempts[task_id]))
        if beat and claimed:
            self._agents.beat(agent, now_ms)
        return claimed

    def requeue_lapsed(self, task_type: str, now_ms: int, lease_ms: int) -> None:
        team = self._team
        with team.lock:
            team.forget(now_ms)
            team.lapse(task_type, now_ms, lease_ms, self._agents.last_beat)

    def holder(self, task_id: str, now_ms: int) -> tuple[bytes | None, str | None]:
        team = self._team
        with team.lock:
            if team.forgotten(task_id, now_ms):
                return None, None
            return team.bodies.get(task_id), team.claims.get(task_id)

    def complete(
        self, task_id: str, agent: str, record: bytes, task_type: str, now_ms: int, forget_at_ms: int
    ) -> tuple[int, str]:
        team = self._team
        with team.lock:
            holder = team.claims.get(task_id)
            if holder is None:
                return 0, ""
            if holder != agent:
                return -1, holder
            del team.claims[task_id], team.deadlines[task_id]
            team.results[task_id] = record
            team.counts.update(("total", f"agent:{holder}", f"type:{task_type}"))
            team.forget(now_ms)
            team.keep_until(task_id, forget_at_ms)
        self._agents.beat(holder, now_ms)
        return 1, holder

    def result(self, task_id: str, now_ms: int) -> bytes | None:
        team = self._team
        with team.lock:
            return None if team.forgotten(task_id, now_ms) else team.results.get(task_id)

    def types(self) -> list[str]:
        team = self._team
        with team.lock:
            return sorted(set(team.kinds.values()))

    def pending(self, task_type: str) -> list[bytes]:
        team = self._team
        with team.lock:
            return [team.bodies[task_id] for _, task_id in sorted(team.queues.get(task_type, ()))]

    def completed_counts(self) -> dict[str, int]:
        team = self._team
        with team.lock:
            return dict(team.counts)
