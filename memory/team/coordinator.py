"""AgentCoordinator: a team's task queue with priorities, atomic claims and leases.

Tasks wait in one sorted set per type, ordered by priority (highest first) then by when they
were added. ``claim_task`` is one Lua call: it first walks the type's expired leases (returning
each task whose claimer stopped heartbeating to the queue, extending the others from the
claimer's last heartbeat), then pops the best pending task and leases it to the claimer. So
across any number of processes a task is held by one agent at a time, and a crashed agent's task
comes back ``lease_seconds`` after its last heartbeat. Only the claimer completes a task (or the
coordinator itself, a STEWARD, on the claimer's behalf when no agent id is given).

All times come from the memory's clock (unix seconds) and are passed into the scripts, so tests
move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from memory.errors import InvalidInputError
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.access import agent_id as check_name
from memory.team.errors import DuplicateTaskError, NotFoundError, TaskOwnershipError, translated
from memory.team.ttl import TTLStrategy

MAX_PRIORITY = 1000
EXPIRED_PER_CLAIM = 64  # expired leases one claim examines (the rest, by the next claims)
CLAIM_BEAT_MS = 1000  # a claim records the claimer's heartbeat at most this often per agent and coordinator

ADD = """
-- KEYS[1] tasks, KEYS[2] order, KEYS[3] seq, KEYS[4] types, KEYS[5] queue:<type>
-- ARGV[1] task id, ARGV[2] msgpack body, ARGV[3] priority (0..1000), ARGV[4] task type
-- returns 1 added, 0 the id is taken
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
-- KEYS[5] order, KEYS[6] tasks, KEYS[7] attempts, KEYS[8] leases_due:<type>
-- ARGV[1] now (unix ms), ARGV[2] lease ms, ARGV[3] claiming agent ('' only requeues), ARGV[4] expired leases to examine,
-- ARGV[5] tasks to claim at most, ARGV[6] '1': record the claimer's heartbeat
-- returns {task id, body, attempts, ...} in queue order, or false when nothing is pending
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
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
-- KEYS[1] claims, KEYS[2] leases:<type>, KEYS[3] results, KEYS[4] stats, KEYS[5] agents
-- ARGV[1] task id, ARGV[2] completing agent, ARGV[3] msgpack result record, ARGV[4] task type, ARGV[5] now (unix ms)
-- returns {1, holder} done, {0, ''} not claimed, {-1, holder} held by another agent
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
return {1, holder}
"""


@dataclass
class AgentTask:
    """A unit of work. ``priority`` is an int 0..1000, higher first."""

    task_id: str
    task_type: str
    description: str = ""
    priority: int = 5
    context: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # pending | claimed | completed
    assigned_to: str | None = None
    result: Any = None
    attempts: int = 0

    def __post_init__(self) -> None:
        check_name(self.task_id, "task_id")
        check_name(self.task_type, "task_type")
        if not isinstance(self.description, str):
            raise InvalidInputError(f"description must be a str, got {type(self.description).__name__}")
        priority = self.priority
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
            raise InvalidInputError(f"priority must be an int from 0 to {MAX_PRIORITY}, got {priority!r}")
        if not isinstance(self.context, Mapping):
            raise InvalidInputError(f"context must be a dict, got {type(self.context).__name__}")

    def body(self) -> bytes:
        return values.pack(
            {name: getattr(self, name) for name in ("task_id", "task_type", "description", "priority", "context")},
            f"task {self.task_id!r}",
        )

    @classmethod
    def from_body(cls, blob: bytes, **state: Any) -> "AgentTask":
        return cls(**values.unpack(blob), **state)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AgentCoordinator:
    """Tasks, heartbeats and broadcasts for one team. Acts as a STEWARD unless given credentials."""

    def __init__(
        self,
        memory: Any,
        team_id: str,
        *,
        lease_seconds: float = 60.0,
        active_seconds: float = float(TTLStrategy.COORDINATION),
        credentials: AgentCredentials | None = None,
    ):
        self.memory = memory
        self.team_id = check_name(team_id, "team_id")
        self._credentials = credentials or AgentCredentials(f"coordinator:{team_id}", AccessTier.STEWARD)
        for name, value in (("lease_seconds", lease_seconds), ("active_seconds", active_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InvalidInputError(f"{name} must be a positive number of seconds, got {value!r}")
        self.lease_ms = int(lease_seconds * 1000)
        self.active_ms = int(active_seconds * 1000)
        self.keys = memory.keys.team(self.team_id)
        self._add = memory.script(ADD)
        self._claim = memory.script(CLAIM)
        self._complete = memory.script(COMPLETE)
        self._beats: dict[str, int] = {}  # agent -> when a claim here last recorded its heartbeat (unix ms)

    @property
    def credentials(self) -> AgentCredentials:
        return self._credentials

    def _require(self, tier: AccessTier, operation: str) -> None:
        self._credentials.require(tier, f"AgentCoordinator.{operation}")

    # -- agents -------------------------------------------------------------------------------
    @translated("write")
    def register_agent(self, agent: str, capabilities: Any = ()) -> bool:
        """Register (or re-register) an agent with its capabilities; counts as a heartbeat (STEWARD)."""
        self._require(AccessTier.STEWARD, "register_agent")
        check_name(agent)
        caps = [capabilities] if isinstance(capabilities, str) else list(capabilities)
        if not all(isinstance(cap, str) for cap in caps):
            raise InvalidInputError("capabilities must be a list of str")
        pipe = self.memory.client.pipeline(transaction=True)
        pipe.hset(self.keys.capabilities, agent, values.pack(caps, "capabilities"))
        pipe.zadd(self.keys.agents, {agent: self.memory.now_ms()})
        pipe.execute()
        return True

    @translated("write")
    def heartbeat(self, agent: str) -> None:
        """The agent is alive: its leases stay valid ``lease_seconds`` from now (CONTRIBUTOR)."""
        self._require(AccessTier.CONTRIBUTOR, "heartbeat")
        self.memory.client.zadd(self.keys.agents, {check_name(agent): self.memory.now_ms()})

    @translated("read")
    def get_active_agents(self) -> list[str]:
        """Agents seen (registered, heartbeat, claim: once a second, completion) within ``active_seconds``, oldest first."""
        self._require(AccessTier.OBSERVER, "get_active_agents")
        since = self.memory.now_ms() - self.active_ms
        return [agent.decode() for agent in self.memory.client.zrangebyscore(self.keys.agents, since, "+inf")]

    @translated("read")
    def get_capabilities(self, agent: str) -> list[str]:
        self._require(AccessTier.OBSERVER, "get_capabilities")
        blob = self.memory.client.hget(self.keys.capabilities, check_name(agent))
        return [] if blob is None else values.unpack(blob)

    # -- tasks --------------------------------------------------------------------------------
    @translated("write")
    def add_task(self, task: AgentTask) -> bool:
        """Queue a task (CONTRIBUTOR). DuplicateTaskError if the team already has this id."""
        self._require(AccessTier.CONTRIBUTOR, "add_task")
        if not isinstance(task, AgentTask):
            raise TypeError(f"task must be an AgentTask, got {type(task).__name__}")
        keys = self.keys
        added = self._add(
            keys=[keys.tasks, keys.order, keys.seq, keys.types, keys.queue(task.task_type)],
            args=[task.task_id, task.body(), task.priority, task.task_type],
        )
        if not added:
            raise DuplicateTaskError(f"team {self.team_id!r} already has a task {task.task_id!r}")
        return True

    @translated("write")
    def claim_task(self, agent: str, task_type: str) -> AgentTask | None:
        """The highest-priority pending task of ``task_type``, now leased to ``agent`` (CONTRIBUTOR)."""
        self._require(AccessTier.CONTRIBUTOR, "claim_task")
        check_name(agent)
        claimed = self._claimed(self._run_claim(check_name(task_type, "task_type"), agent, 1), agent)
        return claimed[0] if claimed else None

    @translated("write")
    def claim_tasks(self, agent: str, task_type: str, count: int) -> list[AgentTask]:
        """Up to ``count`` best pending tasks of ``task_type`` in one atomic call, each leased to ``agent``.

        For agents that work through tasks in batches: one round trip instead of ``count``.
        """
        self._require(AccessTier.CONTRIBUTOR, "claim_tasks")
        check_name(agent)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise InvalidInputError(f"count must be an int from 1 to 1000, got {count!r}")
        return self._claimed(self._run_claim(check_name(task_type, "task_type"), agent, count), agent)

    @staticmethod
    def _claimed(reply: Any, agent: str) -> list[AgentTask]:
        if not reply:
            return []
        return [
            AgentTask.from_body(reply[i + 1], status="claimed", assigned_to=agent, attempts=int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]

    def _run_claim(self, task_type: str, agent: str, count: int = 1) -> Any:
        """A claim counts as the claimer's heartbeat; an agent claiming many tasks a second has it
        recorded once a second (a write fewer per claim, ~25 us of ~200 on the embedded engine)."""
        keys, now = self.keys, self.memory.now_ms()
        beat = bool(agent) and now - self._beats.get(agent, -CLAIM_BEAT_MS) >= CLAIM_BEAT_MS
        reply = self._claim(
            keys=[
                keys.queue(task_type), keys.leases(task_type), keys.claims, keys.agents,
                keys.order, keys.tasks, keys.attempts, keys.leases_due(task_type),
            ],
            args=[now, self.lease_ms, agent, EXPIRED_PER_CLAIM, count, "1" if beat else "0"],
        )
        if beat and reply:
            self._beats[agent] = now
        return reply

    @translated("write")
    def complete_task(self, task_id: str, result: Any = None, agent_id: str | None = None) -> bool:
        """Record ``result`` for a task ``agent_id`` holds (CONTRIBUTOR).

        Without an agent id the coordinator completes it for whoever holds it (STEWARD).
        TaskOwnershipError if it is not claimed, or claimed by another agent.
        """
        if agent_id is None:
            self._require(AccessTier.STEWARD, "complete_task on a claimer's behalf")
        else:
            self._require(AccessTier.CONTRIBUTOR, "complete_task")
            check_name(agent_id)
        check_name(task_id, "task_id")
        keys = self.keys
        pipe = self.memory.client.pipeline(transaction=False)
        pipe.hget(keys.tasks, task_id)
        pipe.hget(keys.claims, task_id)
        body, holder = pipe.execute()
        if body is None:
            raise NotFoundError(f"team {self.team_id!r} has no task {task_id!r}")
        if holder is None:
            raise TaskOwnershipError(f"task {task_id!r} is not claimed (pending, completed, or its lease lapsed)")
        agent = agent_id or holder.decode()
        task_type = values.unpack(body)["task_type"]
        now = self.memory.now_ms()
        record = {"result": result, "agent_id": agent, "task_type": task_type, "completed_at": now / 1000}
        status, holder = self._complete(
            keys=[keys.claims, keys.leases(task_type), keys.results, keys.stats, keys.agents],
            args=[task_id, agent, values.pack(record, "result"), task_type, now],
        )
        if status == 0:
            raise TaskOwnershipError(f"task {task_id!r} is not claimed (pending, completed, or its lease lapsed)")
        if status == -1:
            raise TaskOwnershipError(f"task {task_id!r} is claimed by {holder.decode()!r}, not {agent!r}")
        return True

    @translated("read")
    def get_result(self, task_id: str) -> dict[str, Any] | None:
        """{result, agent_id, task_type, completed_at} of a completed task, or None (OBSERVER)."""
        self._require(AccessTier.OBSERVER, "get_result")
        blob = self.memory.client.hget(self.keys.results, check_name(task_id, "task_id"))
        return None if blob is None else values.unpack(blob)

    @translated("write")
    def requeue_expired(self, task_type: str | None = None) -> None:
        """Return lapsed leases to the queue now (claims do this too) (CONTRIBUTOR)."""
        self._require(AccessTier.CONTRIBUTOR, "requeue_expired")
        for kind in self._types(task_type):
            while True:
                before = self.memory.client.zcount(self.keys.leases(kind), "-inf", self.memory.now_ms())
                self._run_claim(kind, "")
                if before <= EXPIRED_PER_CLAIM:
                    break

    def _types(self, task_type: str | None) -> list[str]:
        if task_type is not None:
            return [check_name(task_type, "task_type")]
        return sorted(kind.decode() for kind in self.memory.client.smembers(self.keys.types))

    @translated("read")
    def get_pending_tasks(self, task_type: str | None = None) -> list[AgentTask]:
        """Pending tasks in claim order per type (OBSERVER); with CONTRIBUTOR+ lapsed leases are requeued first."""
        self._require(AccessTier.OBSERVER, "get_pending_tasks")
        if self._credentials.can_stage():
            self.requeue_expired(task_type)
        pending = []
        for kind in self._types(task_type):
            ids = self.memory.client.zrange(self.keys.queue(kind), 0, -1)
            if ids:
                bodies = self.memory.client.hmget(self.keys.tasks, ids)
                pending += [AgentTask.from_body(body) for body in bodies if body is not None]
        return pending

    @translated("read")
    def aggregate_results(self) -> dict[str, Any]:
        """{total_completed, by_agent: {agent: n}, by_type: {type: n}} (OBSERVER)."""
        self._require(AccessTier.OBSERVER, "aggregate_results")
        stats = {k.decode(): int(v) for k, v in self.memory.client.hgetall(self.keys.stats).items()}
        return {
            "total_completed": stats.get("total", 0),
            "by_agent": {k[6:]: v for k, v in sorted(stats.items()) if k.startswith("agent:")},
            "by_type": {k[5:]: v for k, v in sorted(stats.items()) if k.startswith("type:")},
        }

    def broadcast(self, signal_type: str, data: Any = None) -> str:
        """A signal to every agent on this memory, sent as the coordinator (CONTRIBUTOR)."""
        return self.memory.signals.send(self._credentials, signal_type, data)
