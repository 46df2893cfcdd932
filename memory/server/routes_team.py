"""The coordination layer's routes, one team per path: ``/v1/teams/{team_id}/...``.

The agent acting on a route is the token's agent, or, for a token bound to no agent, the
``agent_id`` the request names (a body field on writes, a query parameter on reads). A token bound
to a team reaches that team only. The route checks the token's tier first (OBSERVER reads,
CONTRIBUTOR writes, VALIDATOR promotes and rejects patterns); the coordination layer checks it
again with the same tier.

Teams are kept apart. A team's task queue is its own in the coordination layer already
(``AgentCoordinator(memory, team_id)``, claiming as the plain agent id). Working memory, signals,
sessions and staged patterns are shared by every team on a key prefix there, so the server names
what it keeps for team T under ``T/``: agent A of team T is ``T/A`` in them, session S is ``T/S``,
pattern P is ``T/P``. Answers give the plain names back. From Python, the same data is reached as
``AgentWorkspace("T/A", memory)`` and ``TeamSession(memory, "T/S")``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field

from memory.server import auth, errors, paging
from memory.server.auth import Principal
from memory.server.bodies import JSONBodyRoute, Strict
from memory.server.errors import ConflictError
from memory.team.access import AccessTier, AgentCredentials
from memory.team.coordinator import MAX_PRIORITY, AgentCoordinator, AgentTask
from memory.team.errors import AccessDeniedError, NotFoundError
from memory.team.patterns import StagedPattern
from memory.team.sessions import TeamSession
from memory.team.store import RedisShortTermMemory
from tiers.errors import InvalidInputError
from tiers.keys import AGENT_ID_LIMIT

NAME = r"^[A-Za-z0-9_.:@/+=-]{1,128}$"  # agents, tasks, keys, sessions and patterns (tiers.keys.validate_name)
MAX_SIGNAL_WAIT = 30.0  # seconds a receive may wait for a signal
READER = "reader"  # who reads for a token bound to no agent, where no agent is named

TeamId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.@+=-]{1,64}$",
                             description="the team: 1-64 of letters, digits and _ . @ + = -")]
PathName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:@+=-]{1,128}$")]
AgentQuery = Annotated[str | None, Query(pattern=NAME, description="the acting agent (tokens bound to no agent)")]
BodyName = Annotated[str, Field(pattern=NAME)]
Agent = Annotated[str | None, Field(None, pattern=NAME, description="the acting agent (tokens bound to no agent)")]


class Stash(Strict):
    key: BodyName
    value: Any = Field(description="any JSON value")
    ttl: float | None = Field(None, gt=0, le=366 * 86400, description="seconds it is kept (default: 1 hour)")
    agent_id: Agent = None


class NewTask(Strict):
    task_id: BodyName
    task_type: BodyName
    description: str = Field("", max_length=100_000)
    priority: int = Field(5, ge=0, le=MAX_PRIORITY, description="higher first")
    context: dict[str, Any] = Field(default_factory=dict)


class Claim(Strict):
    task_type: BodyName
    agent_id: Agent = None


class Completion(Strict):
    result: Any = None
    agent_id: Agent = None


class Acting(Strict):
    agent_id: Agent = None


class Signal(Strict):
    signal_type: str = Field(pattern=r"^[A-Za-z0-9_.@/+=-]{1,64}$")
    target_agent: BodyName
    data: Any = None
    agent_id: Agent = None


class NewSession(Strict):
    session_id: BodyName
    purpose: str = Field("", max_length=4096)
    agent_id: Agent = None


class Shared(Strict):
    value: Any = Field(description="any JSON value")
    agent_id: Agent = None


class NewPattern(Strict):
    pattern_id: BodyName
    pattern_type: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=512)
    description: str = Field("", max_length=100_000)
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    code: str | None = Field(None, max_length=100_000)
    context: dict[str, Any] = Field(default_factory=dict)
    agent_id: Agent = None


class Rejection(Strict):
    reason: str = Field(min_length=1, max_length=10_000)
    agent_id: Agent = None


class Team:
    """One request's view of a team: the caller, the agent acting, and the team's names for both."""

    def __init__(self, memory: RedisShortTermMemory, team_id: str, tier: AccessTier, operation: str,
                 agent_id: str | None = None, *, needs_agent: bool = True):
        principal = auth.caller()
        principal.require(tier, operation)
        principal.require_team(team_id, operation)
        self.memory, self.id, self.principal = memory, team_id, principal
        self.agent = self._acting(principal, agent_id, operation, needs_agent)
        self.credentials = AgentCredentials(self.named(self.agent), principal.tier)

    def _acting(self, principal: Principal, given: str | None, operation: str, needs_agent: bool) -> str:
        if principal.agent is not None:
            if given is not None:
                principal.require_agent(given, operation)
            return principal.agent
        if given is not None:
            return given
        if needs_agent:
            raise InvalidInputError(f"{operation} needs an agent_id: this token is bound to no agent")
        return READER

    def named(self, name: str, what: str = "agent_id") -> str:
        """``name`` as the coordination layer keeps it for this team."""
        full = f"{self.id}/{name}"
        if len(full) > AGENT_ID_LIMIT:
            raise InvalidInputError(f"{what} {name!r} is too long for team {self.id!r}: together with the team's "
                                    f"name and a '/' it may be {AGENT_ID_LIMIT} characters long")
        return full

    def plain(self, name: str | None) -> str | None:
        """A name of this team's as the caller gave it (others as they are)."""
        mine = f"{self.id}/"
        return name[len(mine):] if name is not None and name.startswith(mine) else name

    def coordinator(self) -> AgentCoordinator:
        return AgentCoordinator(self.memory, self.id, credentials=AgentCredentials(self.agent, self.principal.tier))

    def session(self, session_id: str, purpose: str = "") -> TeamSession:
        return TeamSession(self.memory, self.named(session_id, "session_id"), purpose, credentials=self.credentials)

    def existing_session(self, session_id: str) -> TeamSession:
        """The session, read as an observer (renewing nothing); NotFound when it does not exist."""
        credentials = AgentCredentials(self.credentials.agent_id, AccessTier.OBSERVER)
        try:
            return TeamSession(self.memory, self.named(session_id, "session_id"), credentials=credentials)
        except AccessDeniedError:  # an observer's open refuses only a session that does not exist
            raise NotFoundError(f"team {self.id!r} has no session {session_id!r}") from None

    def pattern(self, pattern: StagedPattern) -> dict[str, Any] | None:
        """A pattern of this team's as the caller names it; None for another team's."""
        if not pattern.pattern_id.startswith(f"{self.id}/"):
            return None
        shown = pattern.to_dict()
        for field in ("pattern_id", "agent_id", "decided_by"):
            if field in shown:
                shown[field] = self.plain(shown[field])
        return shown

    def patterns(self, found: list[Any]) -> list[dict[str, Any]]:
        return [shown for shown in map(self.pattern, found) if shown is not None]


def router(memory: RedisShortTermMemory) -> APIRouter:
    routes = APIRouter(prefix="/v1/teams/{team_id}", route_class=JSONBodyRoute,
                       responses=errors.responses(400, 401, 403, 404, 409, 413, 422, 503))
    read, write, validate = AccessTier.OBSERVER, AccessTier.CONTRIBUTOR, AccessTier.VALIDATOR

    # -- working memory -------------------------------------------------------------------------
    @routes.post("/working", tags=["working memory"])
    def stash(team_id: TeamId, given: Stash) -> dict[str, Any]:
        """Keep a value under a key in the acting agent's working memory, for ``ttl`` seconds."""
        team = Team(memory, team_id, write, "stash", given.agent_id)
        memory.stash(given.key, given.value, team.credentials, given.ttl)
        return {"agent_id": team.agent, "key": given.key}

    @routes.get("/working/{agent_id}/{key}", tags=["working memory"])
    def retrieve(team_id: TeamId, agent_id: PathName, key: PathName) -> dict[str, Any]:
        """A value of an agent's working memory (any agent of the team); 404 when absent or expired."""
        team = Team(memory, team_id, read, "retrieve", needs_agent=False)
        value = memory.retrieve(key, team.credentials, team.named(agent_id))
        if value is None:
            raise NotFoundError(f"agent {agent_id!r} of team {team_id!r} keeps nothing under {key!r} (or it expired)")
        return {"agent_id": agent_id, "key": key, "value": value}

    # -- tasks ------------------------------------------------------------------------------------
    @routes.post("/tasks", status_code=201, tags=["tasks"])
    def add_task(team_id: TeamId, given: NewTask) -> dict[str, Any]:
        """Queue a task; 409 when the team has its id already."""
        team = Team(memory, team_id, write, "add_task", needs_agent=False)
        team.coordinator().add_task(AgentTask(given.task_id, given.task_type, given.description, given.priority,
                                              given.context))
        return {"task_id": given.task_id}

    @routes.get("/tasks", tags=["tasks"])
    def pending(team_id: TeamId, task_type: Annotated[str | None, Query(pattern=NAME)] = None,
                limit: paging.Limit = paging.DEFAULT_LIMIT, offset: paging.Offset = 0) -> dict[str, Any]:
        """Pending tasks, in the order they will be claimed (per type)."""
        team = Team(memory, team_id, read, "get_pending_tasks", needs_agent=False)
        tasks = [task.to_dict() for task in team.coordinator().get_pending_tasks(task_type)]
        return paging.page("tasks", *paging.sliced(tasks, limit, offset))

    @routes.post("/tasks/claim", tags=["tasks"])
    def claim(team_id: TeamId, given: Claim) -> dict[str, Any]:
        """Lease the best pending task of a type to the acting agent, atomically; ``task`` null when none."""
        team = Team(memory, team_id, write, "claim_task", given.agent_id)
        claimed = team.coordinator().claim_task(team.agent, given.task_type)
        return {"task": None if claimed is None else claimed.to_dict()}

    @routes.post("/tasks/{task_id}/complete", tags=["tasks"])
    def complete(team_id: TeamId, task_id: PathName, given: Completion) -> dict[str, Any]:
        """Record the result of a task the acting agent holds; 409 when it holds none such."""
        team = Team(memory, team_id, write, "complete_task", given.agent_id)
        team.coordinator().complete_task(task_id, given.result, agent_id=team.agent)
        return {"task_id": task_id, "completed": True}

    @routes.get("/tasks/{task_id}/result", tags=["tasks"])
    def result(team_id: TeamId, task_id: PathName) -> dict[str, Any]:
        """A completed task's result, agent, type and completion time; 404 when there is none."""
        team = Team(memory, team_id, read, "get_result", needs_agent=False)
        found = team.coordinator().get_result(task_id)
        if found is None:
            raise NotFoundError(f"team {team_id!r} has no result for task {task_id!r}")
        return found

    @routes.post("/heartbeat", tags=["tasks"])
    def heartbeat(team_id: TeamId, given: Acting) -> dict[str, Any]:
        """The acting agent is alive: the tasks it holds stay leased."""
        team = Team(memory, team_id, write, "heartbeat", given.agent_id)
        team.coordinator().heartbeat(team.agent)
        return {"agent_id": team.agent}

    # -- signals ----------------------------------------------------------------------------------
    @routes.post("/signals", status_code=201, tags=["signals"])
    def send(team_id: TeamId, given: Signal) -> dict[str, Any]:
        """Send a signal to an agent of the team; it is delivered once."""
        team = Team(memory, team_id, write, "send_signal", given.agent_id)
        target = team.named(given.target_agent, "target_agent")
        return {"signal_id": memory.send_signal(team.credentials, given.signal_type, given.data, target)}

    @routes.get("/signals", tags=["signals"])
    def receive(
        team_id: TeamId,
        agent_id: AgentQuery = None,
        signal_type: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.@/+=-]{1,64}$")] = None,
        timeout: Annotated[float, Query(ge=0, le=MAX_SIGNAL_WAIT, description="seconds to wait for one")] = 0.0,
    ) -> dict[str, Any]:
        """The acting agent's signals not yet received, oldest first (each is given once)."""
        team = Team(memory, team_id, read, "receive_signals", agent_id)
        found = memory.receive_signals(team.credentials, signal_type, timeout)
        signals = [{**signal, "sender": team.plain(signal["sender"]), "target": team.plain(signal["target"])}
                   for signal in found]
        return {"signals": signals}

    # -- sessions ---------------------------------------------------------------------------------
    def info(team: Team, session: TeamSession) -> dict[str, Any]:
        found = session.get_info()
        return {**found, "session_id": team.plain(found["session_id"]),
                "participants": [team.plain(agent) for agent in found["participants"]]}

    @routes.post("/sessions", tags=["sessions"])
    def open_session(team_id: TeamId, given: NewSession) -> dict[str, Any]:
        """Open a session (or join the one of that id) as the acting agent."""
        team = Team(memory, team_id, write, "TeamSession", given.agent_id)
        session = team.session(given.session_id, given.purpose)
        session.add_agent(team.credentials.agent_id)
        return info(team, session)

    @routes.get("/sessions/{session_id}", tags=["sessions"])
    def session_info(team_id: TeamId, session_id: PathName) -> dict[str, Any]:
        """A session's purpose, participants and shared keys (reading renews nothing)."""
        team = Team(memory, team_id, read, "TeamSession.get_info", needs_agent=False)
        return info(team, team.existing_session(session_id))

    @routes.put("/sessions/{session_id}/shared/{key}", tags=["sessions"])
    def share(team_id: TeamId, session_id: PathName, key: PathName, given: Shared) -> dict[str, Any]:
        """Put a value in a session's shared context (the session must exist)."""
        team = Team(memory, team_id, write, "TeamSession.share", given.agent_id)
        team.existing_session(session_id)
        team.session(session_id).share(key, given.value)
        return {"session_id": session_id, "key": key}

    @routes.get("/sessions/{session_id}/shared/{key}", tags=["sessions"])
    def shared(team_id: TeamId, session_id: PathName, key: PathName) -> dict[str, Any]:
        """A value of a session's shared context; 404 when absent."""
        team = Team(memory, team_id, read, "TeamSession.get", needs_agent=False)
        missing = object()
        value = team.existing_session(session_id).get(key, missing)
        if value is missing:
            raise NotFoundError(f"session {session_id!r} of team {team_id!r} shares nothing under {key!r}")
        return {"session_id": session_id, "key": key, "value": value}

    # -- patterns ---------------------------------------------------------------------------------
    @routes.post("/patterns", status_code=201, tags=["patterns"])
    def stage(team_id: TeamId, given: NewPattern) -> dict[str, Any]:
        """Stage a pattern for validation; 409 when the library holds it already."""
        team = Team(memory, team_id, write, "stage_pattern", given.agent_id)
        fields = given.model_dump(exclude={"agent_id"}, exclude_none=True)
        fields["pattern_id"] = team.named(given.pattern_id, "pattern_id")
        if not memory.stage_pattern(None, team.credentials, agent_id=team.credentials.agent_id, **fields):
            raise ConflictError(f"pattern {given.pattern_id!r} is in the library already: it is not staged again")
        return {"pattern_id": given.pattern_id, "staged": True}

    @routes.get("/patterns/staged", tags=["patterns"])
    def staged(team_id: TeamId, limit: paging.Limit = paging.DEFAULT_LIMIT,
               offset: paging.Offset = 0) -> dict[str, Any]:
        """The team's patterns awaiting validation, oldest first."""
        team = Team(memory, team_id, read, "get_staged_patterns", needs_agent=False)
        found = team.patterns(memory.get_staged_patterns(team.credentials))
        return paging.page("patterns", *paging.sliced(found, limit, offset))

    @routes.post("/patterns/{pattern_id}/promote", tags=["patterns"])
    def promote(team_id: TeamId, pattern_id: PathName, given: Acting) -> dict[str, Any]:
        """Move a staged pattern into the long-term library (VALIDATOR); 404 when it is not staged."""
        team = Team(memory, team_id, validate, "promote_pattern", given.agent_id)
        promoted = memory.promote_pattern(team.named(pattern_id, "pattern_id"), team.credentials)
        if promoted is None:
            raise NotFoundError(f"team {team_id!r} has no staged pattern {pattern_id!r} (or it was decided)")
        return team.pattern(promoted) or {}

    @routes.post("/patterns/{pattern_id}/reject", tags=["patterns"])
    def reject(team_id: TeamId, pattern_id: PathName, given: Rejection) -> dict[str, Any]:
        """Reject a staged pattern, keeping the reason in the library (VALIDATOR); 404 when it is not staged."""
        team = Team(memory, team_id, validate, "reject_pattern", given.agent_id)
        if not memory.reject_pattern(team.named(pattern_id, "pattern_id"), given.reason, team.credentials):
            raise NotFoundError(f"team {team_id!r} has no staged pattern {pattern_id!r} (or it was decided)")
        return {"pattern_id": pattern_id, "rejected": True}

    @routes.get("/patterns", tags=["patterns"])
    def library(
        team_id: TeamId,
        pattern_type: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        name: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
        limit: paging.Limit = paging.DEFAULT_LIMIT,
        offset: paging.Offset = 0,
    ) -> dict[str, Any]:
        """The team's promoted patterns in the library, by type and/or name, ordered by id."""
        team = Team(memory, team_id, read, "find_patterns", needs_agent=False)
        found = team.patterns(memory.pattern_library.find(pattern_type=pattern_type, name=name))
        return paging.page("patterns", *paging.sliced(found, limit, offset))

    return routes
