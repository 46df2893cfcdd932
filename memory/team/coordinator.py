"""AgentCoordinator: a team's task queue with priorities, atomic claims and leases.

Tasks are claimed by priority (highest first), then in the order they were added. A claim first
returns to the queue each lapsed lease whose claimer stopped heartbeating (extending the others
from the claimer's last heartbeat), then leases the best pending task to the claimer, atomically:
one Lua call on Redis (tiers/coordination/tasks.py), one lock in the process on the embedded
engine (tiers/coordination/local_tasks.py). So a task is held by one agent at a time, and a
crashed agent's task comes back ``lease_seconds`` after its last heartbeat. Only the claimer
completes a task (or the coordinator itself, a STEWARD, on the claimer's behalf when no agent id
is given). A coordinator with CONTRIBUTOR credentials claims, completes and heartbeats as its own
agent id only; acting in another agent's name takes STEWARD (the default tier, for a coordinator
shared by a team). Agents, their heartbeats and capabilities are Redis keys on both engines
(tiers/coordination/agents.py).

A completed task is kept ``retention_seconds`` (24 hours by default; the retention of the
coordinator that completed it) from its completion, then forgotten, a few at a time by later
claims and completions: its result, body and attempts leave, ``get_result`` answers None as for an
id never added, ``complete_task`` raises NotFoundError, and ``add_task`` takes the id as a new
task. ``aggregate_results`` keeps counting it.

All times come from the memory's clock (unix seconds) and are passed into the queue, so tests
move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials, checked
from memory.team.errors import DuplicateTaskError, NotFoundError, TaskOwnershipError, translated
from memory.team.store import shared
from memory.team.ttl import TTLStrategy, milliseconds
from tiers.errors import InvalidInputError

MAX_PRIORITY = 1000
CLAIM_BEAT_MS = 1000  # a claim records the claimer's heartbeat at most this often per agent and coordinator
RETENTION_SECONDS = 24 * 3600  # how long a completed task and its result are kept by default
STATUSES = ("pending", "claimed", "completed")


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
        self.validate()

    def validate(self) -> None:
        """Check every field (again before the task is queued: the fields can be changed after construction)."""
        validation.name(self.task_id, "task_id")
        validation.name(self.task_type, "task_type")
        validation.text(self.description, "description", values.MAX_VALUE_BYTES)
        validation.count(self.priority, "priority", 0, MAX_PRIORITY)
        if not isinstance(self.context, Mapping):
            raise InvalidInputError(f"context must be a dict, got {type(self.context).__name__}")
        if self.status not in STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}; got {validation.shown(self.status)}")
        if self.assigned_to is not None:
            validation.name(self.assigned_to, "assigned_to")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 0:
            raise InvalidInputError(f"attempts must be a non-negative int, got {validation.shown(self.attempts)}")

    def body(self) -> bytes:
        return values.pack(
            {name: getattr(self, name) for name in ("task_id", "task_type", "description", "priority", "context")},
            f"task {self.task_id!r}",
        )

    @classmethod
    def from_body(cls, blob: bytes, **state: Any) -> AgentTask:
        """A task read back from its queue: its fields were checked when it was queued."""
        task = cls.__new__(cls)
        vars(task).update({"status": "pending", "assigned_to": None, "result": None, "attempts": 0,
                           **values.unpack(blob), **state})
        return task

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AgentCoordinator:
    """Tasks, heartbeats and broadcasts for one team. Acts as a STEWARD unless given credentials.

    ``lease_seconds``: how long a claim holds after the claimer's last heartbeat; ``active_seconds``:
    how recently an agent was seen to count as active; ``retention_seconds``: how long a completed
    task and its result are kept (see the module docstring).
    """

    def __init__(
        self,
        memory: Any,
        team_id: str,
        *,
        lease_seconds: float = 60.0,
        active_seconds: float = float(TTLStrategy.COORDINATION),
        retention_seconds: float = RETENTION_SECONDS,
        credentials: AgentCredentials | None = None,
    ):
        self.memory = shared(memory)
        self.team_id = validation.name(team_id, "team_id")
        if credentials is None:
            credentials = AgentCredentials(f"coordinator:{team_id}", AccessTier.STEWARD)
        self._credentials = checked(credentials)
        self.lease_ms = milliseconds(lease_seconds, "lease_seconds")
        self.active_ms = milliseconds(active_seconds, "active_seconds")
        self.retention_ms = milliseconds(retention_seconds, "retention_seconds")
        self.keys = memory.keys.team(self.team_id)
        self._queue = memory.task_queue(self.team_id)
        self._agents = memory.stores.agents(self.team_id)
        self._beats: dict[str, int] = {}  # agent -> when a claim here last recorded its heartbeat (unix ms)

    @property
    def credentials(self) -> AgentCredentials:
        return self._credentials

    def _require(self, tier: AccessTier, operation: str) -> None:
        self._credentials.require(tier, f"AgentCoordinator.{operation}")

    def _as(self, agent: Any, operation: str) -> str:
        """``agent``, checked: acting as oneself takes CONTRIBUTOR, in another agent's name STEWARD."""
        self._require(AccessTier.CONTRIBUTOR, operation)
        if validation.agent_id(agent) != self._credentials.agent_id:
            self._require(AccessTier.STEWARD, f"{operation} in another agent's name")
        return agent

    # -- agents -------------------------------------------------------------------------------
    @translated("write")
    def register_agent(self, agent: str, capabilities: Any = ()) -> bool:
        """Register (or re-register) an agent with its capabilities; counts as a heartbeat (STEWARD)."""
        self._require(AccessTier.STEWARD, "register_agent")
        validation.agent_id(agent)
        if isinstance(capabilities, str):
            capabilities = [capabilities]
        if not isinstance(capabilities, Iterable) or isinstance(capabilities, (bytes, Mapping)):
            raise InvalidInputError(f"capabilities must be a str or a list of str, got {type(capabilities).__name__}")
        caps = [validation.text(cap, "a capability", 128, empty=False) for cap in capabilities]
        self._agents.register(agent, values.pack(caps, "capabilities"), self.memory.now_ms())
        return True

    @translated("write")
    def heartbeat(self, agent: str) -> None:
        """The agent is alive: its leases stay valid ``lease_seconds`` from now (CONTRIBUTOR)."""
        self._agents.beat(self._as(agent, "heartbeat"), self.memory.now_ms())

    @translated("read")
    def get_active_agents(self) -> list[str]:
        """Agents seen (registered, heartbeat, claim: once a second, completion) within ``active_seconds``, oldest first."""
        self._require(AccessTier.OBSERVER, "get_active_agents")
        return self._agents.seen_since(self.memory.now_ms() - self.active_ms)

    @translated("read")
    def get_capabilities(self, agent: str) -> list[str]:
        self._require(AccessTier.OBSERVER, "get_capabilities")
        blob = self._agents.capabilities(validation.agent_id(agent))
        return [] if blob is None else values.unpack(blob)

    # -- tasks --------------------------------------------------------------------------------
    @translated("write")
    def add_task(self, task: AgentTask) -> bool:
        """Queue a task (CONTRIBUTOR). DuplicateTaskError if the team already has this id."""
        self._require(AccessTier.CONTRIBUTOR, "add_task")
        if not isinstance(task, AgentTask):
            raise InvalidInputError(f"task must be an AgentTask, got {type(task).__name__}")
        task.validate()
        if not self._queue.add(task.task_id, task.body(), task.priority, task.task_type, self.memory.now_ms()):
            raise DuplicateTaskError(f"team {self.team_id!r} already has a task {task.task_id!r}")
        return True

    @translated("write")
    def claim_task(self, agent: str, task_type: str) -> AgentTask | None:
        """The highest-priority pending task of ``task_type``, now leased to ``agent`` (CONTRIBUTOR)."""
        self._as(agent, "claim_task")
        claimed = self._claim(validation.name(task_type, "task_type"), agent, 1)
        return claimed[0] if claimed else None

    @translated("write")
    def claim_tasks(self, agent: str, task_type: str, count: int) -> list[AgentTask]:
        """Up to ``count`` best pending tasks of ``task_type`` in one atomic call, each leased to ``agent``.

        For agents that work through tasks in batches: one round trip instead of ``count``.
        """
        self._as(agent, "claim_tasks")
        return self._claim(validation.name(task_type, "task_type"), agent, validation.count(count, "count", 1, 1000))

    def _claim(self, task_type: str, agent: str, count: int) -> list[AgentTask]:
        """A claim counts as the claimer's heartbeat; an agent claiming many tasks a second has it
        recorded once a second (a write fewer per claim)."""
        now = self.memory.now_ms()
        beat = now - self._beats.get(agent, -CLAIM_BEAT_MS) >= CLAIM_BEAT_MS
        claimed = self._queue.claim(task_type, agent, now, self.lease_ms, count, beat)
        if beat and claimed:
            self._beats[agent] = now
        return [
            AgentTask.from_body(body, status="claimed", assigned_to=agent, attempts=attempts)
            for body, attempts in claimed
        ]

    @translated("write")
    def complete_task(self, task_id: str, result: Any = None, agent_id: str | None = None) -> bool:
        """Record ``result`` for a task ``agent_id`` holds (CONTRIBUTOR as ``agent_id``, else STEWARD).

        Without an agent id the coordinator completes it for whoever holds it (STEWARD).
        TaskOwnershipError if it is not claimed, or claimed by another agent.
        """
        if agent_id is None:
            self._require(AccessTier.STEWARD, "complete_task on a claimer's behalf")
        else:
            self._as(agent_id, "complete_task")
        validation.name(task_id, "task_id")
        now = self.memory.now_ms()
        body, holder = self._queue.holder(task_id, now)
        if body is None:
            raise NotFoundError(f"team {self.team_id!r} has no task {task_id!r}")
        if holder is None:
            raise TaskOwnershipError(f"task {task_id!r} is not claimed (pending, completed, or its lease lapsed)")
        agent = agent_id or holder
        task_type = values.unpack(body)["task_type"]
        record = values.pack({"result": result, "agent_id": agent, "task_type": task_type, "completed_at": now / 1000}, "result")
        status, holder = self._queue.complete(task_id, agent, record, task_type, now, now + self.retention_ms)
        if status == 0:
            raise TaskOwnershipError(f"task {task_id!r} is not claimed (pending, completed, or its lease lapsed)")
        if status == -1:
            raise TaskOwnershipError(f"task {task_id!r} is claimed by {holder!r}, not {agent!r}")
        return True

    @translated("read")
    def get_result(self, task_id: str) -> dict[str, Any] | None:
        """{result, agent_id, task_type, completed_at} of a completed task, or None (OBSERVER); None
        also once the task's retention has ended."""
        self._require(AccessTier.OBSERVER, "get_result")
        blob = self._queue.result(validation.name(task_id, "task_id"), self.memory.now_ms())
        return None if blob is None else values.unpack(blob)

    @translated("write")
    def requeue_expired(self, task_type: str | None = None) -> None:
        """Return lapsed leases to the queue now (claims do this too) (CONTRIBUTOR)."""
        self._require(AccessTier.CONTRIBUTOR, "requeue_expired")
        for kind in self._types(task_type):
            self._queue.requeue_lapsed(kind, self.memory.now_ms(), self.lease_ms)

    def _types(self, task_type: str | None) -> list[str]:
        return self._queue.types() if task_type is None else [validation.name(task_type, "task_type")]

    @translated("read")
    def get_pending_tasks(self, task_type: str | None = None) -> list[AgentTask]:
        """Pending tasks in claim order per type (OBSERVER); with CONTRIBUTOR+ lapsed leases are requeued first."""
        self._require(AccessTier.OBSERVER, "get_pending_tasks")
        if self._credentials.can_stage():
            self.requeue_expired(task_type)
        return [AgentTask.from_body(body) for kind in self._types(task_type) for body in self._queue.pending(kind)]

    @translated("read")
    def aggregate_results(self) -> dict[str, Any]:
        """{total_completed, by_agent: {agent: n}, by_type: {type: n}} (OBSERVER)."""
        self._require(AccessTier.OBSERVER, "aggregate_results")
        stats = self._queue.completed_counts()
        return {
            "total_completed": stats.get("total", 0),
            "by_agent": {k[6:]: v for k, v in sorted(stats.items()) if k.startswith("agent:")},
            "by_type": {k[5:]: v for k, v in sorted(stats.items()) if k.startswith("type:")},
        }

    def broadcast(self, signal_type: str, data: Any = None) -> str:
        """A signal to every agent on this memory, sent as the coordinator (CONTRIBUTOR)."""
        return self.memory.signals.send(self._credentials, signal_type, data)
