"""A team's tasks in Redis: Lua scripts that add, claim and complete atomically across processes.

Tasks wait in one sorted set per type, ordered by priority (highest first) then by when they
were added. A claim is one script call: it first walks the type's lapsed leases (returning each
task whose claimer stopped heartbeating to the queue, extending the others from the claimer's
last heartbeat), then pops the best pending tasks and leases them to the claimer. The key schema
is in tiers/coordination/keys.py; the embedded engine keeps the same state in its process instead
(tiers/coordination/local_tasks.py), behind the same methods (base.TaskStore).

A completed task is kept until its retention ends (the ``done`` sorted set holds when): then its
body, queue order, attempts and result are forgotten, FORGET_PER_CALL of the oldest by each claim
and each completion, so their number stays bounded by what completes within one retention. The
completion counts stay. Until it is forgotten a task past its retention reads as forgotten already
(no result, no holder), and adding its id forgets it first, so the id is free again.

Adding, claiming (requeueing too) and completing each take effect once on a Redis server: a call
sent again after a lost reply returns what the first run did (tiers/scripts.py, once.lua), so a
claim hands its caller the tasks it leased, an add does not find its own id taken, and a
completion is counted once. The reads are harmless to send again.
"""

from __future__ import annotations

from typing import Any

from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

EXPIRED_PER_CLAIM = 64  # lapsed leases one claim examines (the rest, by the next claims)
FORGET_PER_CALL = 16  # completed tasks past their retention one claim or completion forgets

ADD = team_source("forget", "add")
CLAIM = team_source("forget", "claim")
COMPLETE = team_source("forget", "complete")


class RedisTaskQueue:
    """One team's task queue on Redis. Times are unix ms, passed in by the coordinator."""

    def __init__(self, context: Context, team_id: str):
        self.client = context.client
        self.keys = context.keys.team(team_id)
        # each changes what a second run would find (a counter, the queue, the holder): once.lua
        # makes a call sent again after a lost reply return the first run's answer
        self._add = context.script(ADD, once=True)
        self._claim = context.script(CLAIM, once=True)
        self._complete = context.script(COMPLETE, once=True)

    def add(self, task_id: str, body: bytes, priority: int, task_type: str, now_ms: int) -> bool:
        """Queue a task; False if the team already has the id."""
        keys = self.keys
        added = writing("redis", lambda: self._add(
            keys=[keys.tasks, keys.order, keys.seq, keys.types, keys.queue(task_type), keys.done, keys.attempts, keys.results],
            args=[task_id, body, priority, task_type, now_ms],
        ))
        return bool(added)

    def claim(
        self, task_type: str, agent: str, now_ms: int, lease_ms: int, count: int, beat: bool
    ) -> list[tuple[bytes, int]]:
        """(body, attempts) of up to ``count`` best pending tasks, leased to ``agent``; ``beat``
        also records the claimer's heartbeat (only when something was claimed)."""
        reply = self._run_claim(task_type, agent, now_ms, lease_ms, count, beat)
        if not reply:
            return []
        return [(reply[i + 1], int(reply[i + 2])) for i in range(0, len(reply), 3)]

    def requeue_lapsed(self, task_type: str, now_ms: int, lease_ms: int) -> None:
        while True:
            before = reading("redis", lambda: self.client.zcount(self.keys.leases(task_type), "-inf", now_ms))
            self._run_claim(task_type, "", now_ms, lease_ms, 1, False)
            if before <= EXPIRED_PER_CLAIM:
                return

    def _run_claim(self, task_type: str, agent: str, now_ms: int, lease_ms: int, count: int, beat: bool) -> Any:
        keys = self.keys
        return writing("redis", lambda: self._claim(
            keys=[
                keys.queue(task_type), keys.leases(task_type), keys.claims, keys.agents,
                keys.order, keys.tasks, keys.attempts, keys.leases_due(task_type), keys.done, keys.results,
            ],
            args=[now_ms, lease_ms, agent, EXPIRED_PER_CLAIM, count, "1" if beat else "0", FORGET_PER_CALL],
        ))

    def holder(self, task_id: str, now_ms: int) -> tuple[bytes | None, str | None]:
        """(body, claimer) of a task; None for an unknown or forgotten task, or one nobody holds."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.tasks, task_id)
        pipe.hget(self.keys.claims, task_id)
        pipe.zscore(self.keys.done, task_id)
        body, holder, ends = reading("redis", pipe.execute)
        if ends is not None and ends <= now_ms:
            return None, None
        return body, None if holder is None else holder.decode()

    def complete(
        self, task_id: str, agent: str, record: bytes, task_type: str, now_ms: int, forget_at_ms: int
    ) -> tuple[int, str]:
        """(1, holder) done, kept until ``forget_at_ms``; (0, '') not claimed; (-1, holder) held by another agent."""
        keys = self.keys
        status, holder = writing("redis", lambda: self._complete(
            keys=[keys.claims, keys.leases(task_type), keys.results, keys.stats, keys.agents,
                  keys.done, keys.tasks, keys.order, keys.attempts],
            args=[task_id, agent, record, task_type, now_ms, forget_at_ms, FORGET_PER_CALL],
        ))
        return int(status), holder.decode() if isinstance(holder, bytes) else holder

    def result(self, task_id: str, now_ms: int) -> bytes | None:
        """The result record of a completed task, None once its retention has ended."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.results, task_id)
        pipe.zscore(self.keys.done, task_id)
        blob, ends = reading("redis", pipe.execute)
        return None if ends is not None and ends <= now_ms else blob

    def types(self) -> list[str]:
        return sorted(kind.decode() for kind in reading("redis", lambda: self.client.smembers(self.keys.types)))

    def pending(self, task_type: str) -> list[bytes]:
        """Bodies of the type's pending tasks, in claim order."""
        ids = reading("redis", lambda: self.client.zrange(self.keys.queue(task_type), 0, -1))
        if not ids:
            return []
        return [body for body in reading("redis", lambda: self.client.hmget(self.keys.tasks, ids)) if body is not None]

    def completed_counts(self) -> dict[str, int]:
        """``total``, ``agent:<id>`` and ``type:<type>`` completion counts."""
        return {k.decode(): int(v) for k, v in reading("redis", lambda: self.client.hgetall(self.keys.stats)).items()}
