"""tiermem over MCP: an agent's memories and its team's shared memory as tools an LLM can call.

Built on the official MCP Python SDK (``mcp.server.mcpserver.MCPServer``). :func:`build_server`
gives the server over an engine and a team memory; :func:`mcp_router` serves it as streamable HTTP
(stateless, JSON answers); :func:`serve_stdio` speaks it on stdin/stdout (``tiermem mcp``).

| tool | does | tier |
|---|---|---|
| ``store_memory``     | store a state, action or interaction of an agent at a step            | CONTRIBUTOR |
| ``search_memories``  | an agent's memories by text, attributes or likeness to a state (paged) | OBSERVER |
| ``get_memory``       | one memory by id                                                       | OBSERVER |
| ``memories_between`` | an agent's memories from one step to another, in step order (paged)    | OBSERVER |
| ``stash``            | keep a value in the acting agent's working memory, with a TTL          | CONTRIBUTOR |
| ``retrieve``         | a value from an agent's working memory                                 | OBSERVER |
| ``add_task``         | queue a task for the team                                              | CONTRIBUTOR |
| ``claim_task``       | lease the team's best pending task of a type to the acting agent       | CONTRIBUTOR |
| ``complete_task``    | record the result of a task the acting agent holds                     | CONTRIBUTOR |
| ``send_signal``      | signal one agent, or broadcast                                         | CONTRIBUTOR |
| ``receive_signals``  | the acting agent's signals not yet received (each once)                | OBSERVER |
| ``stage_pattern``    | stage a discovered pattern for validation                              | CONTRIBUTOR |
| ``promote_pattern``  | move a staged pattern into the long-term pattern library               | VALIDATOR |
| ``find_patterns``    | promoted patterns by type and name (paged)                             | OBSERVER |

Every tool asks :func:`memory.server.auth.caller` who is calling, checks the tier it needs and the
caller's bounds (a token bound to an agent reaches that agent's memories only and acts as that agent;
one bound to a team reaches that team only), then runs the engine call on a worker thread (the
caller's context goes with it). In team tools the caller is its token's agent, else its name
(``local`` on stdio without a token); ``agent_id`` names another agent to act for, which a bound
token may not and which takes STEWARD (VALIDATOR to stage a pattern), as in the coordination layer.
A tiermem error comes back as a tool error (``isError``) whose text is ``<ErrorClass>: <message>``
and whose structured content is ``{"error": class, "message": ...}``, as the REST API answers;
arguments that do not fit a tool's schema are refused by the SDK before the tool runs. List tools
take ``limit`` and ``offset`` and answer ``next_offset``: the offset of the next page, or null on
the last one. Memories come back as the engine's dicts without their vectors.

Mounting in the REST app (FastAPI merges the router's lifespan, which runs the SDK's session
manager; ``BearerAuth`` around the whole app names each request's caller)::

    from memory.server.mcp import mcp_router

    app.include_router(mcp_router(engine, team, host=host))   # serves POST/GET/DELETE /mcp

With ``team`` None the server has the four memory tools alone.

``host`` is the address the server listens on: on 127.0.0.1, localhost or ::1 the SDK refuses
requests whose Host or Origin header is not a loopback one (DNS rebinding protection); on any other
address (where tokens are required, ``auth.check_bind``) every Host is accepted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it for TypedDict on Python < 3.12

from memory import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentMemoryAPI,
    AgentTask,
    InvalidInputError,
    MemoryAPIException,
    MemoryNotFoundError,
    RedisShortTermMemory,
    validation,
)
from memory.server.auth import Principal, caller, current_principal

if TYPE_CHECKING:
    from fastapi import APIRouter

MAX_PAGE = 100  # the most memories, patterns one call answers: what an LLM's context can take
MAX_WAIT = 30.0  # seconds receive_signals may wait: a waiting call holds a worker thread
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_.:@/+=-]")

INSTRUCTIONS = """\
tiermem keeps the memories of agents (states, actions, interactions, each at a step number) across a
short-term, an intermediate and a long-term tier, and gives a team of agents shared short-term memory:
working memory with TTLs, a task queue, signals and a library of validated patterns. Tools that list
answer next_offset: pass it as offset to get the next page; null means there is no more. Errors name
the tiermem error class and say what to change."""

AgentId = Annotated[str, Field(description="the agent whose memories these are: letters, digits and _ . : @ / + = -")]
TeamId = Annotated[str, Field(description="the team: letters, digits and _ . : @ / + = -")]
ActingAgent = Annotated[str | None, Field(description=(
    "the agent to act for; default: yourself (the agent your token is bound to, else your caller name). "
    "Acting for another agent takes STEWARD (VALIDATOR to stage a pattern)"))]
MemoryType = Literal["state", "action", "interaction"]
Limit = Annotated[int, Field(description=f"how many to answer, 1 to {MAX_PAGE}")]
Offset = Annotated[int, Field(description="how many to skip: 0, or the next_offset of the previous page")]
Json = Any  # any JSON value


class StoredMemory(TypedDict):
    memory_id: str


class MemoryPage(TypedDict):
    memories: list[dict[str, Any]]
    next_offset: int | None
    failed_tiers: list[str]  # tiers that did not answer: the page holds what the others had


class Stashed(TypedDict):
    agent_id: str
    key: str


class Retrieved(TypedDict):
    agent_id: str
    key: str
    found: bool
    value: Json


class TaskAdded(TypedDict):
    task_id: str


class Claimed(TypedDict):
    task: dict[str, Any] | None


class Completed(TypedDict):
    task_id: str
    completed: bool


class SignalSent(TypedDict):
    signal_id: str


class Signals(TypedDict):
    signals: list[dict[str, Any]]


class Staged(TypedDict):
    pattern_id: str
    staged: bool


class Promoted(TypedDict):
    pattern: dict[str, Any] | None


class PatternPage(TypedDict):
    patterns: list[dict[str, Any]]
    next_offset: int | None


def _error(exc: MemoryAPIException) -> CallToolResult:
    name, message = type(exc).__name__, str(exc)
    return CallToolResult(content=[TextContent(type="text", text=f"{name}: {message}")],
                          structured_content={"error": name, "message": message}, is_error=True)


def _tool(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as the SDK's tool: run on a worker thread (anyio copies the caller's context
    into it), a tiermem error answered as a tool error. Its signature and docstring are the tool's."""

    @functools.wraps(function)
    async def run(**arguments: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(functools.partial(function, **arguments))
        except MemoryAPIException as exc:
            return _error(exc)

    return run


def _page_bounds(limit: Any, offset: Any) -> tuple[int, int]:
    return validation.count(limit, "limit", 1, MAX_PAGE), validation.count(offset, "offset")


def _next(items: list[Any], limit: int, offset: int) -> tuple[list[Any], int | None]:
    """The page out of ``items`` (fetched one past ``limit``) and the offset of the next page."""
    return items[:limit], offset + limit if len(items) > limit else None


def _memory(found: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in found.items() if key != "embeddings"}


class _MemoryTools:
    """The memory tools' bodies: plain calls into the engine, run on worker threads."""

    def __init__(self, engine: AgentMemoryAPI):
        self.engine = engine

    # -- who is calling -----------------------------------------------------------------------------
    @staticmethod
    def _reaching_agent(agent_id: str, tier: AccessTier, operation: str) -> None:
        principal = caller()
        principal.require(tier, operation)
        principal.require_agent(validation.agent_id(agent_id), operation)

    # -- an agent's memories ------------------------------------------------------------------------
    def store_memory(
        self, agent_id: AgentId,
        data: Annotated[dict[str, Any], Field(description="the memory's contents, any JSON object")],
        step_number: Annotated[int, Field(description="the simulation step or conversation turn, 0 or more")],
        memory_type: Annotated[MemoryType, Field(description=(
            "state: what the agent is or sees; action: what it did; interaction: what it said or heard"))] = "state",
        priority: Annotated[float, Field(description="importance from 0 to 1: important memories stay longer in "
                                                     "the fast tiers")] = 1.0,
    ) -> StoredMemory:
        """Store one memory of an agent at a step. Returns its memory_id. Needs CONTRIBUTOR."""
        self._reaching_agent(agent_id, AccessTier.CONTRIBUTOR, "store_memory")
        store = {"state": self.engine.store_agent_state, "action": self.engine.store_agent_action,
                 "interaction": self.engine.store_agent_interaction}[validation.memory_type(memory_type)]
        return {"memory_id": store(agent_id, data, step_number, priority)}

    def search_memories(
        self, agent_id: AgentId,
        text: Annotated[str | None, Field(description="find memories whose contents are about this text "
                                                      "(meaning and keywords); not with attributes or similar_to")] = None,
        attributes: Annotated[dict[str, Any] | None, Field(description=(
            'conditions on the contents, every one must hold: {"outcome": "success"} (a dot path equals a '
            'value) or {"health": {"$lt": 0.5}} ($eq $ne $gt $gte $lt $lte $in)'))] = None,
        similar_to: Annotated[dict[str, Any] | None, Field(description=(
            "a state (contents) to compare with: the most alike memories come first"))] = None,
        memory_type: Annotated[MemoryType | None, Field(description="only memories of this type")] = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> MemoryPage:
        """Search an agent's memories in every tier: by text, by attributes of their contents, or by
        likeness to a state (attributes and similar_to combine). The best first when ranked by text or
        likeness, else in step order. Answers next_offset for the next page. Needs OBSERVER."""
        self._reaching_agent(agent_id, AccessTier.OBSERVER, "search_memories")
        limit, offset = _page_bounds(limit, offset)
        if text is not None:
            if attributes is not None or similar_to is not None:
                raise InvalidInputError("text search cannot be combined with attributes or similar_to: "
                                        "search by text alone, or by attributes and similar_to")
            found = self.engine.search_by_content(agent_id, text, k=limit + 1, memory_type=memory_type, offset=offset)
        elif attributes is None and similar_to is None:
            raise InvalidInputError("search_memories needs text, attributes or similar_to "
                                    "(memories_between lists memories by step)")
        else:
            query = self.engine.query(agent_id)
            if attributes is not None:
                query = query.where(attributes)
            if memory_type is not None:
                query = query.of_type(memory_type)
            if similar_to is not None:
                query = query.similar_to(similar_to)
            found = query.top(limit + 1, offset=offset)
        memories, next_offset = _next(found, limit, offset)
        return {"memories": [_memory(m) for m in memories], "next_offset": next_offset,
                "failed_tiers": list(found.failed_tiers)}

    def get_memory(
        self, agent_id: AgentId, memory_id: Annotated[str, Field(description="the memory_id store_memory answered")],
    ) -> dict[str, Any]:
        """One memory by id, from whichever tier holds it: memory_id, agent_id, step_number, timestamp,
        contents, metadata (memory_type, importance_score, retrieval_count, ...) and tier. Needs OBSERVER."""
        self._reaching_agent(agent_id, AccessTier.OBSERVER, "get_memory")
        found = self.engine.get_memory(agent_id, memory_id)
        if found is None:
            raise MemoryNotFoundError(f"agent {agent_id!r} has no memory {memory_id!r}")
        return _memory(found)

    def memories_between(
        self, agent_id: AgentId,
        start_step: Annotated[int, Field(description="the first step, included")],
        end_step: Annotated[int, Field(description="the last step, included")],
        memory_type: Annotated[MemoryType | None, Field(description="only memories of this type")] = None,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> MemoryPage:
        """An agent's memories from start_step to end_step (both included), in step order, from every
        tier. Answers next_offset for the next page. Needs OBSERVER."""
        self._reaching_agent(agent_id, AccessTier.OBSERVER, "memories_between")
        limit, offset = _page_bounds(limit, offset)
        found = self.engine.retrieve_by_time_range(agent_id, start_step, end_step, memory_type, limit + 1,
                                                   offset=offset)
        memories, next_offset = _next(found, limit, offset)
        return {"memories": [_memory(m) for m in memories], "next_offset": next_offset,
                "failed_tiers": list(found.failed_tiers)}


class _TeamTools:
    """The team tools' bodies: plain calls into the team memory, run on worker threads."""

    def __init__(self, team: RedisShortTermMemory):
        self.team = team

    # -- who is calling -----------------------------------------------------------------------------
    @staticmethod
    def _team_caller(team_id: str, tier: AccessTier, operation: str) -> AgentCredentials:
        """The caller's own credentials in a team call (its token's agent, else its name), once its
        tier and bounds allow the call."""
        principal = caller()
        principal.require(tier, operation)
        principal.require_team(validation.name(team_id, "team_id"), operation)
        return AgentCredentials(principal.agent or _caller_name(principal), principal.tier)

    @staticmethod
    def _for(credentials: AgentCredentials, agent_id: str | None, operation: str) -> str:
        """The agent a call acts for: ``agent_id``, else the caller's own; a token bound to an agent
        names no other. Acting in another agent's name is then the coordination layer's to allow."""
        if agent_id is None:
            return credentials.agent_id
        caller().require_agent(validation.agent_id(agent_id), operation)
        return agent_id

    def _as(self, credentials: AgentCredentials, agent_id: str | None, operation: str) -> AgentCredentials:
        """Credentials of the agent a working memory or signal call acts as: in another agent's name
        it takes STEWARD, as claiming for another agent does."""
        agent = self._for(credentials, agent_id, operation)
        if agent != credentials.agent_id:
            caller().require(AccessTier.STEWARD, f"{operation} in another agent's name")
        return AgentCredentials(agent, credentials.tier)

    def _coordinator(self, team_id: str, credentials: AgentCredentials) -> AgentCoordinator:
        return AgentCoordinator(self.team, team_id, credentials=credentials)

    # -- working memory -----------------------------------------------------------------------------
    def stash(
        self, team_id: TeamId,
        key: Annotated[str, Field(description="the name to keep it under: letters, digits and _ . : @ / + = -")],
        value: Annotated[Json, Field(description="any JSON value")],
        ttl: Annotated[float | None, Field(description="seconds to keep it (default 3600)")] = None,
        agent_id: ActingAgent = None,
    ) -> Stashed:
        """Keep a value in the acting agent's working memory for ttl seconds, readable by its team
        (the same key again replaces it). Needs CONTRIBUTOR."""
        credentials = self._as(self._team_caller(team_id, AccessTier.CONTRIBUTOR, "stash"), agent_id, "stash")
        self.team.stash(key, value, credentials, ttl)
        return {"agent_id": credentials.agent_id, "key": key}

    def retrieve(
        self, team_id: TeamId, key: Annotated[str, Field(description="the key it was stashed under")],
        agent_id: Annotated[str | None, Field(
            description="whose working memory; default: the agent your token is bound to, else your caller name")] = None,
    ) -> Retrieved:
        """A value from an agent's working memory; found is false when it was never stashed or has
        expired. Needs OBSERVER."""
        credentials = self._team_caller(team_id, AccessTier.OBSERVER, "retrieve")
        owner = credentials.agent_id if agent_id is None else validation.agent_id(agent_id)
        value = self.team.retrieve(key, credentials, owner)
        return {"agent_id": owner, "key": key, "found": value is not None, "value": value}

    # -- tasks --------------------------------------------------------------------------------------
    def add_task(
        self, team_id: TeamId,
        task_id: Annotated[str, Field(description="an id of the team's own choosing, unique in the team")],
        task_type: Annotated[str, Field(description="the kind of work: claim_task asks for a type")],
        description: Annotated[str, Field(description="what is to be done")] = "",
        priority: Annotated[int, Field(description="0 to 1000, higher is claimed first")] = 5,
        context: Annotated[dict[str, Any] | None, Field(description="anything the claimer needs, a JSON object")] = None,
    ) -> TaskAdded:
        """Queue a task for the team. A task id the team already has (pending, claimed, or completed
        within a day) is refused with DuplicateTaskError. Needs CONTRIBUTOR."""
        credentials = self._team_caller(team_id, AccessTier.CONTRIBUTOR, "add_task")
        task = AgentTask(task_id, task_type, description, priority, context or {})
        self._coordinator(team_id, credentials).add_task(task)
        return {"task_id": task_id}

    def claim_task(
        self, team_id: TeamId, task_type: Annotated[str, Field(description="the kind of task to claim")],
        agent_id: ActingAgent = None,
    ) -> Claimed:
        """Lease the team's highest-priority pending task of task_type to the acting agent, atomically:
        no other agent gets it. task is null when none is pending. Needs CONTRIBUTOR."""
        credentials = self._team_caller(team_id, AccessTier.CONTRIBUTOR, "claim_task")
        agent = self._for(credentials, agent_id, "claim_task")
        task = self._coordinator(team_id, credentials).claim_task(agent, task_type)
        return {"task": None if task is None else task.to_dict()}

    def complete_task(
        self, team_id: TeamId, task_id: Annotated[str, Field(description="the task claim_task gave")],
        result: Annotated[Json, Field(description="the outcome, any JSON value")] = None,
        agent_id: ActingAgent = None,
    ) -> Completed:
        """Record the result of a task the acting agent holds; a task it does not hold is refused with
        TaskOwnershipError. Needs CONTRIBUTOR."""
        credentials = self._team_caller(team_id, AccessTier.CONTRIBUTOR, "complete_task")
        agent = self._for(credentials, agent_id, "complete_task")
        self._coordinator(team_id, credentials).complete_task(task_id, result, agent_id=agent)
        return {"task_id": task_id, "completed": True}

    # -- signals ------------------------------------------------------------------------------------
    def send_signal(
        self, team_id: TeamId,
        signal_type: Annotated[str, Field(description="what kind of signal, e.g. review_complete")],
        data: Annotated[Json, Field(description="any JSON value")] = None,
        target_agent: Annotated[str | None, Field(description="the agent to signal; null broadcasts to every "
                                                               "agent")] = None,
        agent_id: ActingAgent = None,
    ) -> SignalSent:
        """Send a signal from the acting agent to target_agent, or to every agent. Each recipient
        receives it once. Needs CONTRIBUTOR."""
        credentials = self._as(self._team_caller(team_id, AccessTier.CONTRIBUTOR, "send_signal"), agent_id,
                               "send_signal")
        return {"signal_id": self.team.send_signal(credentials, signal_type, data, target_agent)}

    def receive_signals(
        self, team_id: TeamId,
        signal_type: Annotated[str | None, Field(description="only signals of this type (others stay unread)")] = None,
        timeout: Annotated[float, Field(description=f"seconds to wait when none is there, 0 to {MAX_WAIT:g}")] = 0.0,
        agent_id: ActingAgent = None,
    ) -> Signals:
        """Every signal for the acting agent not yet received, oldest first, each with signal_type,
        sender, data, target, sent_at and id. Received signals are not given again. Needs OBSERVER."""
        credentials = self._as(self._team_caller(team_id, AccessTier.OBSERVER, "receive_signals"), agent_id,
                               "receive_signals")
        wait = validation.seconds(timeout, "timeout", zero=True)
        if wait > MAX_WAIT:
            raise InvalidInputError(f"timeout must be at most {MAX_WAIT:g} seconds over MCP, got {timeout!r}")
        return {"signals": self.team.receive_signals(credentials, signal_type, wait)}

    # -- patterns -----------------------------------------------------------------------------------
    def stage_pattern(
        self, team_id: TeamId,
        pattern_id: Annotated[str, Field(description="an id of your own choosing")],
        pattern_type: Annotated[str, Field(description="its kind, e.g. security")],
        name: Annotated[str, Field(description="a short name")],
        description: Annotated[str, Field(description="what the pattern is and when it applies")],
        confidence: Annotated[float, Field(description="0 to 1")] = 0.5,
        code: Annotated[str | None, Field(description="an example, if any")] = None,
        context: Annotated[dict[str, Any] | None, Field(description="anything else, a JSON object")] = None,
        agent_id: ActingAgent = None,
    ) -> Staged:
        """Stage a pattern the acting agent discovered, for a validator to promote into the team's
        pattern library (kept staged 24 hours). staged is false when the library has it already.
        Needs CONTRIBUTOR."""
        credentials = self._team_caller(team_id, AccessTier.CONTRIBUTOR, "stage_pattern")
        staged = self.team.stage_pattern(
            credentials=credentials, pattern_id=pattern_id, pattern_type=pattern_type, name=name,
            description=description, confidence=confidence, code=code, context=context or {},
            agent_id=self._for(credentials, agent_id, "stage_pattern"))
        return {"pattern_id": pattern_id, "staged": staged}

    def promote_pattern(
        self, team_id: TeamId, pattern_id: Annotated[str, Field(description="a staged pattern's id")],
    ) -> Promoted:
        """Move a staged pattern into the long-term pattern library. pattern is null when it is not
        staged (never, expired, or another validator decided it first). Needs VALIDATOR."""
        credentials = self._team_caller(team_id, AccessTier.VALIDATOR, "promote_pattern")
        promoted = self.team.promote_pattern(pattern_id, credentials)
        return {"pattern": None if promoted is None else promoted.to_dict()}

    def find_patterns(
        self, team_id: TeamId,
        pattern_type: Annotated[str | None, Field(description="only patterns of this type")] = None,
        name: Annotated[str | None, Field(description="only patterns of this exact name")] = None,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> PatternPage:
        """Promoted patterns in the library, by type and/or name, ordered by id. Answers next_offset
        for the next page. Needs OBSERVER."""
        self._team_caller(team_id, AccessTier.OBSERVER, "find_patterns")
        limit, offset = _page_bounds(limit, offset)
        found = self.team.pattern_library.find(pattern_type=pattern_type, name=name)
        patterns, next_offset = _next(found[offset:offset + limit + 1], limit, offset)
        return {"patterns": [pattern.to_dict() for pattern in patterns], "next_offset": next_offset}


# in the order a client lists them; READ_ONLY change nothing (receive_signals moves the reader's cursor)
MEMORY_TOOLS = ("store_memory", "search_memories", "get_memory", "memories_between")
TEAM_TOOLS = ("stash", "retrieve", "add_task", "claim_task", "complete_task", "send_signal", "receive_signals",
              "stage_pattern", "promote_pattern", "find_patterns")
READ_ONLY = frozenset({"search_memories", "get_memory", "memories_between", "retrieve", "find_patterns"})


def _caller_name(principal: Principal) -> str:
    """The caller's name as an agent id (a token's name may hold a space: ``token 3``)."""
    return _NOT_A_NAME.sub("-", principal.name)


def _version() -> str:
    try:
        return metadata.version("tiermem")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return ""


def build_server(engine: AgentMemoryAPI, team: RedisShortTermMemory | None) -> MCPServer:
    """The MCP server of tiermem's tools over ``engine`` and ``team`` (neither is closed by it);
    without a team memory, the memory tools alone."""
    server: MCPServer = MCPServer("tiermem", instructions=INSTRUCTIONS, version=_version(), log_level="WARNING")
    bodies: list[tuple[object, tuple[str, ...]]] = [(_MemoryTools(engine), MEMORY_TOOLS)]
    if team is not None:
        bodies.append((_TeamTools(team), TEAM_TOOLS))
    for tools, names in bodies:
        for name in names:
            server.add_tool(_tool(getattr(tools, name)),
                            annotations=ToolAnnotations(read_only_hint=name in READ_ONLY, destructive_hint=False,
                                                        open_world_hint=False))
    return server


def mcp_router(engine: AgentMemoryAPI, team: RedisShortTermMemory | None, *, host: str = "127.0.0.1",
               path: str = "/mcp") -> APIRouter:
    """The streamable HTTP endpoint at ``path``, as a FastAPI router whose lifespan runs the SDK's
    session manager: include it in an app (``app.include_router(...)``), or serve it alone (a
    router is an ASGI app). Wrap the app in ``bearer.BearerAuth`` to name callers."""
    from fastapi import APIRouter  # the server extra; the stdio server does without it

    server = build_server(engine, team)
    app = server.streamable_http_app(streamable_http_path=path, stateless_http=True, json_response=True, host=host)
    router = APIRouter(lifespan=lambda _app: server.session_manager.run())
    router.routes.extend(app.routes)
    return router


def serve_stdio(engine: AgentMemoryAPI, team: RedisShortTermMemory, principal: Principal) -> None:
    """Speak MCP on stdin and stdout until stdin closes, every call made by ``principal``. The SDK
    serves the protocol from a duplicate of stdout and points the process's stdout at stderr meanwhile,
    so nothing printed can corrupt it."""
    server = build_server(engine, team)
    token = current_principal.set(principal)
    try:
        anyio.run(server.run_stdio_async)
    finally:
        current_principal.reset(token)
