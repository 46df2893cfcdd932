"""A team's tasks in Redis: Lua scripts that add, claim and complete atomically across processes.

Tasks wait in one sorted set per type, ordered by priority (highest first) then by when they
were added. A claim is one script call: it first walks the type's lapsed leases (returning each
task whose claimer stopped heartbeating to the queue, extending the others from the claimer's
last heartbeat), then pops the best pending tasks and leases them to the claimer. The key schema
is in memory/team/keys.py; the embedded engine keeps the same state in its process instead
(memory/team/local_tasks.py), behind the same methods.

A completed task is kept until its retention ends (the ``done`` sorted set holds when): then its
body, queue order, attempts and result are forgotten, FORGET_PER_CALL of the oldest by each claim
and each completion, so their number stays bounded by what completes within one retention. The
completion counts stay. Until it is forgotten a task past its retention reads as forgotten already
(no result, no holder), and adding its id forgets it first, so the id is free again.
"""

from __future__ import annotations

from typing import Any

EXPIRED_PER_CLAIM = 64  # lapsed leases one claim examines (the rest, by the next claims)
FORGET_PER_CALL = 16  # completed tasks past their retention one claim or completion forgets

FORGET = """
-- drop(ids, ...): forget completed tasks (their body, queue order, attempts and result)
local function drop(ids, done, tasks, order, attempts, results)
  redis.call('ZREM', done, unpack(ids))
  for _, key in ipairs({tasks, order, attempts, results}) do redis.call('HDEL', key, unpack(ids)) end
end
-- forget(now, limit, ...): drop up to `limit` completed tasks whose retention ended by `now`, oldest first
local function forget(now, limit, done, tasks, order, attempts, results)
  local gone = redis.call('ZRANGEBYSCORE', done, '-inf', now, 'LIMIT', 0, limit)
  if #gone > 0 then drop(gone, done, tasks, order, attempts, results) end
end
"""

ADD = """
-- KEYS[1] tasks, KEYS[2] order, KEYS[3] seq, KEYS[4] types, KEYS[5] queue:<type>,
-- KEYS[6] done, KEYS[7] attempts, KEYS[8] results
-- ARGV[1] task id, ARGV[2] msgpack body, ARGV[3] priority (0..1000), ARGV[4] task type, ARGV[5] now (unix ms)
-- returns 1 added, 0 the id is taken
""" + FORGET + """
local ends = redis.call('ZSCORE', KEYS[6], ARGV[1])
if ends and tonumber(ends) <= tonumber(ARGV[5]) then  -- completed, past its retention: the id is free
  drop({ARGV[1]}, KEYS[6], KEYS[1], KEYS[2], KEYS[7], KEYS[8])
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local seq = redis.call('INCR', KEYS[3])
local score = (1000 - tonumber(ARGV[3])) * 1099511627776 + seq
redis.call('HSET', KEYS[2], ARGV[1], score)
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[5], score, ARGV[1])
return 1
"""

CLAIM = """
-- KEYS[1] queue:<type>, KEYS[2] leases:<type>, KEYS[3] claims, KEYS[4] agents (heartbeats),
-- KEYS[5] order, KEYS[6] tasks, KEYS[7] attempts, KEYS[8] leases_due:<type>, KEYS[9] done, KEYS[10] results
-- ARGV[1] now (unix ms), ARGV[2] lease ms, ARGV[3] claiming agent ('' only requeues), ARGV[4] expired leases to examine,
-- ARGV[5] tasks to claim at most, ARGV[6] '1': record the claimer's heartbeat, ARGV[7] completed tasks to forget at most
-- returns {task id, body, attempts, ...} in queue order, or false when nothing is pending
""" + FORGET + """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
forget(now, tonumber(ARGV[7]), KEYS[9], KEYS[6], KEYS[5], KEYS[7], KEYS[10])
-- no lease of the type ends before `due` (absent: not known), so most claims skip the lease scan
local due = tonumber(redis.call('GET', KEYS[8]) or '-1')
if due < 0 or due <= now then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  for _, id in ipairs(expired) do
    local holder = redis.call('HGET', KEYS[3], id)
    local beat = holder and redis.call('ZSCORE', KEYS[4], holder)
    if not holder then
      redis.call('ZREM', KEYS[2], id)
    elseif beat and tonumber(beat) + lease > now then
      redis.call('ZADD', KEYS[2], tonumber(beat) + lease, id)
    else
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[5], id), id)
    end
  end
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  due = tonumber(first[2] or '-1')
  if due < 0 then redis.call('DEL', KEYS[8]) else redis.call('SET', KEYS[8], first[2]) end
end
if ARGV[3] == '' then return false end
-- ZRANGE + ZREM rather than ZPOPMIN: the same inside a script, and O(log N) on every engine
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
if #ids == 0 then return false end
redis.call('ZREM', KEYS[1], unpack(ids))
local held, leased = {}, {}
for i, id in ipairs(ids) do
  held[2 * i - 1], held[2 * i] = id, ARGV[3]
  leased[2 * i - 1], leased[2 * i] = now + lease, id
end
redis.call('HSET', KEYS[3], unpack(held))
redis.call('ZADD', KEYS[2], unpack(leased))
if due < 0 or now + lease < due then redis.call('SET', KEYS[8], now + lease) end
local bodies = redis.call('HMGET', KEYS[6], unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = bodies[i]
  out[#out + 1] = redis.call('HINCRBY', KEYS[7], id, 1)
end
if ARGV[6] == '1' then redis.call('ZADD', KEYS[4], now, ARGV[3]) end
return out
"""

COMPLETE = """
-- KEYS[1] claims, KEYS[2] leases:<type>, KEYS[3] results, KEYS[4] stats, KEYS[5] agents,
-- KEYS[6] done, KEYS[7] tasks, KEYS[8] order, KEYS[9] attempts
-- ARGV[1] task id, ARGV[2] completing agent, ARGV[3] msgpack result record, ARGV[4] task type, ARGV[5] now (unix ms),
-- ARGV[6] when its retention ends (unix ms), ARGV[7] completed tasks to forget at most
-- returns {1, holder} done, {0, ''} not claimed, {-1, holder} held by another agent
""" + FORGET + """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then return {0, ''} end
if ARGV[2] ~= holder then return {-1, holder} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'total', 1)
redis.call('HINCRBY', KEYS[4], 'agent:' .. holder, 1)
redis.call('HINCRBY', KEYS[4], 'type:' .. ARGV[4], 1)
redis.call('ZADD', KEYS[5], ARGV[5], holder)
forget(tonumber(ARGV[5]), tonumber(ARGV[7]), KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[3])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
return {1, holder}
"""


class RedisTaskQueue:
    """One team's task queue on Redis. Times are unix ms, passed in by the coordinator."""

    def __init__(self, memory: Any, team_id: str):
        self.client = memory.client
        self.keys = memory.keys.team(team_id)
        self._add = memory.script(ADD)
        self._claim = memory.script(CLAIM)
        self._complete = memory.script(COMPLETE)

    def add(self, task_id: str, body: bytes, priority: int, task_type: str, now_ms: int, client: Any = None) -> bool:
        """Queue a task; False if the team already has the id. ``client`` may be a pipeline."""
        keys = self.keys
        added = self._add(
            keys=[keys.tasks, keys.order, keys.seq, keys.types, keys.queue(task_type), keys.done, keys.attempts, keys.results],
            args=[task_id, body, priority, task_type, now_ms],
            client=client,
        )
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
            before = self.client.zcount(self.keys.leases(task_type), "-inf", now_ms)
            self._run_claim(task_type, "", now_ms, lease_ms, 1, False)
            if before <= EXPIRED_PER_CLAIM:
                return

    def _run_claim(self, task_type: str, agent: str, now_ms: int, lease_ms: int, count: int, beat: bool) -> Any:
        keys = self.keys
        return self._claim(
            keys=[
                keys.queue(task_type), keys.leases(task_type), keys.claims, keys.agents,
                keys.order, keys.tasks, keys.attempts, keys.leases_due(task_type), keys.done, keys.results,
            ],
            args=[now_ms, lease_ms, agent, EXPIRED_PER_CLAIM, count, "1" if beat else "0", FORGET_PER_CALL],
        )

    def holder(self, task_id: str, now_ms: int) -> tuple[bytes | None, str | None]:
        """(body, claimer) of a task; None for an unknown or forgotten task, or one nobody holds."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.tasks, task_id)
        pipe.hget(self.keys.claims, task_id)
        pipe.zscore(self.keys.done, task_id)
        body, holder, ends = pipe.execute()
        if ends is not None and ends <= now_ms:
            return None, None
        return body, None if holder is None else holder.decode()

    def complete(
        self, task_id: str, agent: str, record: bytes, task_type: str, now_ms: int, forget_at_ms: int
    ) -> tuple[int, str]:
        """(1, holder) done, kept until ``forget_at_ms``; (0, '') not claimed; (-1, holder) held by another agent."""
        keys = self.keys
        status, holder = self._complete(
            keys=[keys.claims, keys.leases(task_type), keys.results, keys.stats, keys.agents,
                  keys.done, keys.tasks, keys.order, keys.attempts],
            args=[task_id, agent, record, task_type, now_ms, forget_at_ms, FORGET_PER_CALL],
        )
        return int(status), holder.decode() if isinstance(holder, bytes) else holder

    def result(self, task_id: str, now_ms: int) -> bytes | None:
        """The result record of a completed task, None once its retention has ended."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.results, task_id)
        pipe.zscore(self.keys.done, task_id)
        blob, ends = pipe.execute()
        return None if ends is not None and ends <= now_ms else blob

    def types(self) -> list[str]:
        return sorted(kind.decode() for kind in self.client.smembers(self.keys.types))

    def pending(self, task_type: str) -> list[bytes]:
        """Bodies of the type's pending tasks, in claim order."""
        ids = self.client.zrange(self.keys.queue(task_type), 0, -1)
        return [body for body in self.client.hmget(self.keys.tasks, ids) if body is not None] if ids else []

    def completed_counts(self) -> dict[str, int]:
        """``total``, ``agent:<id>`` and ``type:<type>`` completion counts."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.stats).items()}
