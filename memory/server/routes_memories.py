"""The engine's routes: agents, their memories, searches, statistics and the steward's maintenance.

Every route asks who is calling (``auth.caller()``) and checks the tier it needs (OBSERVER reads,
CONTRIBUTOR writes, STEWARD administers) and, for a token bound to an agent, that the agent is its
own. The endpoints are plain functions: FastAPI runs them in its thread pool, since the engine's
calls block, and the caller's context (the principal) goes with them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from pydantic import Field

from memory._engine.agent_memory import AgentMemoryAPI
from memory._engine.reads import QueryResult
from memory.server import auth, errors, paging
from memory.server.auth import OutOfBoundsError, Principal
from memory.server.bodies import JSONBodyRoute, Strict
from memory.team.access import AccessTier
from memory.validation import MAX_STEP
from tiers.errors import InvalidInputError, MemoryNotFoundError

LAST_STEP = MAX_STEP - 1
MAX_VECTOR = 4096  # values in an embedding

MemoryType = Literal["state", "action", "interaction"]
Step = Annotated[int, Field(ge=0, le=LAST_STEP)]
AgentId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:@+=-]{1,128}$", description="the agent's id")]
MemoryId = Annotated[str, Path(min_length=1, max_length=255, description="the memory's id")]


class NewMemory(Strict):
    memory_type: MemoryType
    data: dict[str, Any] = Field(description="the memory's contents, stored as they are")
    step_number: Step
    priority: float = Field(1.0, ge=0.0, le=1.0, description="importance, 0 to 1")
    embedding: list[float] | None = Field(None, min_length=1, max_length=MAX_VECTOR,
                                          description="a vector of your own (search_config.vector_dim values)")


class Near(Strict):
    center: list[float] = Field(min_length=2, max_length=3, description="a point, 2 or 3 coordinates")
    radius: float | None = Field(None, ge=0.0, description="within this distance, nearest first; none: nearest first")


class Search(Strict):
    """Conditions that all apply. ``text`` is a text search of its own (it combines with memory_type only);
    ranked by likeness to ``similar_to``, else by distance to ``near``, else by step."""

    attributes: dict[str, Any] | None = Field(None, description='{"dot.path": value} or {"dot.path": {"$gte": 5}}')
    similar_to: dict[str, Any] | None = Field(None, description="a state: rank by likeness to it")
    text: str | None = Field(None, min_length=1, max_length=10_000, description="a text query")
    near: Near | None = None
    start_step: Step | None = None
    end_step: Step | None = None
    memory_type: MemoryType | None = None
    limit: int = Field(paging.DEFAULT_LIMIT, ge=1, le=paging.MAX_LIMIT)
    offset: int = Field(0, ge=0, le=paging.MAX_OFFSET)


class Maintenance(Strict):
    agent_id: str | None = Field(None, description="this agent only (default: every agent with work)")


def reading(agent_id: str | None, operation: str) -> Principal:
    return _checked(AccessTier.OBSERVER, agent_id, operation)


def writing(agent_id: str | None, operation: str) -> Principal:
    return _checked(AccessTier.CONTRIBUTOR, agent_id, operation)


def _checked(tier: AccessTier, agent_id: str | None, operation: str) -> Principal:
    principal = auth.caller()
    principal.require(tier, operation)
    if agent_id is None:
        if principal.agent is not None:
            raise OutOfBoundsError(principal, operation, "every agent", f"agent {principal.agent!r}")
    else:
        principal.require_agent(agent_id, operation)
    return principal


def _memories(found: QueryResult, limit: int, offset: int) -> dict[str, Any]:
    memories, next_offset = paging.cut(found, limit, offset)
    return {"memories": memories, "next_offset": next_offset, "failed_tiers": list(found.failed_tiers)}


def router(engine: AgentMemoryAPI) -> APIRouter:
    routes = APIRouter(prefix="/v1", route_class=JSONBodyRoute,
                       responses=errors.responses(400, 401, 403, 404, 413, 422, 503))

    def known(agent_id: str) -> None:
        """NotFound (404) for an agent that holds no memories (asked only when an answer is empty)."""
        if agent_id not in engine.list_agents():
            raise MemoryNotFoundError(f"unknown agent {agent_id!r}: it holds no memories")

    def answered(agent_id: str, found: QueryResult, limit: int, offset: int) -> dict[str, Any]:
        if not found and offset == 0:
            known(agent_id)
        return _memories(found, limit, offset)

    @routes.get("/agents", tags=["memories"])
    def agents(limit: paging.Limit = paging.DEFAULT_LIMIT, offset: paging.Offset = 0) -> dict[str, Any]:
        """Every agent holding memories, sorted (a token bound to an agent sees only its own)."""
        principal = auth.caller()
        principal.require(AccessTier.OBSERVER, "listing agents")
        names = sorted(engine.list_agents())
        if principal.agent is not None:
            names = [name for name in names if name == principal.agent]
        return paging.page("agents", *paging.sliced(names, limit, offset))

    @routes.post("/agents/{agent_id}/memories", status_code=201, tags=["memories"])
    def store(agent_id: AgentId, memory: NewMemory) -> dict[str, str]:
        """Store one memory; answers its id."""
        writing(agent_id, "storing a memory")
        record = {"agent_id": agent_id, "data": memory.data, "step_number": memory.step_number,
                  "memory_type": memory.memory_type, "priority": memory.priority, "embedding": memory.embedding}
        (memory_id,) = engine.store_many([record])
        return {"memory_id": memory_id}

    @routes.get("/agents/{agent_id}/memories", tags=["memories"])
    def memories(
        agent_id: AgentId,
        start_step: Annotated[int, Query(ge=0, le=LAST_STEP)] = 0,
        end_step: Annotated[int, Query(ge=0, le=LAST_STEP)] = LAST_STEP,
        memory_type: MemoryType | None = None,
        limit: paging.Limit = paging.DEFAULT_LIMIT,
        offset: paging.Offset = 0,
    ) -> dict[str, Any]:
        """An agent's memories with start_step <= step_number <= end_step, in step order."""
        reading(agent_id, "reading memories")
        found = engine.retrieve_by_time_range(agent_id, start_step, end_step, memory_type, limit + 1, offset=offset)
        return answered(agent_id, found, limit, offset)

    @routes.get("/agents/{agent_id}/memories/{memory_id}", tags=["memories"])
    def memory(agent_id: AgentId, memory_id: MemoryId) -> dict[str, Any]:
        """One memory by id, from whichever tier holds it (counts as a read of it)."""
        reading(agent_id, "reading a memory")
        found = engine.get_memory(agent_id, memory_id)
        if found is None:
            known(agent_id)
            raise MemoryNotFoundError(f"agent {agent_id!r} has no memory {memory_id!r}")
        return found

    @routes.post("/agents/{agent_id}/search", tags=["memories"])
    def search(agent_id: AgentId, query: Search) -> dict[str, Any]:
        """Memories that pass every condition given, best first."""
        reading(agent_id, "searching memories")
        return answered(agent_id, _search(engine, agent_id, query), query.limit, query.offset)

    @routes.get("/agents/{agent_id}/stats", tags=["statistics"])
    def agent_stats(agent_id: AgentId) -> dict[str, Any]:
        """One agent's statistics: counts, bytes and compression per tier, memory types, importance."""
        reading(agent_id, "reading statistics")
        known(agent_id)
        return engine.get_memory_statistics(agent_id)

    @routes.get("/stats", tags=["statistics"])
    def stats() -> dict[str, Any]:
        """The statistics of every agent together, the cache's and the indices'."""
        reading(None, "reading the statistics of every agent")
        return engine.get_memory_statistics()

    @routes.delete("/agents/{agent_id}/memories", tags=["administration"])
    def clear(agent_id: AgentId) -> dict[str, int]:
        """Delete every memory of an agent from every tier (STEWARD)."""
        _checked(AccessTier.STEWARD, agent_id, "deleting an agent's memories")
        return {"deleted": engine.clear_agent_memory(agent_id)}

    @routes.post("/maintenance", tags=["administration"])
    def maintain(given: Annotated[Maintenance | None, Body()] = None) -> dict[str, Any]:
        """Run maintenance now, for one agent or every agent with work (STEWARD); answers what moved."""
        agent_id = given.agent_id if given is not None else None
        _checked(AccessTier.STEWARD, agent_id, "running maintenance")
        return engine.force_memory_maintenance(agent_id).as_dict()

    return routes


def _search(engine: AgentMemoryAPI, agent_id: str, given: Search) -> QueryResult:
    fetch = given.limit + 1
    if given.text is not None:
        others = [name for name in ("attributes", "similar_to", "near", "start_step", "end_step")
                  if getattr(given, name) is not None]
        if others:
            raise InvalidInputError(f"a text search combines with memory_type only, not with {', '.join(others)}")
        return engine.search_by_content(agent_id, given.text, k=fetch, memory_type=given.memory_type, offset=given.offset)
    query = engine.query(agent_id)
    if given.start_step is not None or given.end_step is not None:
        query = query.between(given.start_step or 0, LAST_STEP if given.end_step is None else given.end_step)
    if given.memory_type is not None:
        query = query.of_type(given.memory_type)
    if given.attributes is not None:
        query = query.where(given.attributes)
    if given.near is not None:
        center = given.near.center
        query = query.nearest_to(center) if given.near.radius is None else query.near(center, given.near.radius)
    if given.similar_to is not None:
        query = query.similar_to(given.similar_to)
    return query.top(fetch, offset=given.offset)
