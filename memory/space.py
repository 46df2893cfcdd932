"""MemorySpace: one agent's view of the engine, so callers need not repeat the agent id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from memory import validation
from tiers.errors import InvalidInputError

if TYPE_CHECKING:
    from memory._engine.agent_memory import AgentMemoryAPI, QueryResult
    from memory.query import QueryBuilder


class MemorySpace:
    """Methods take an optional ``agent_id=`` too (the Agent Memory API's examples pass it); it must be this
    space's agent. Over AsyncAgentMemoryAPI (its ``get_memory_space``) each method's answer is awaited."""

    def __init__(self, api: AgentMemoryAPI, agent_id: str):
        self.api = api
        self.agent_id = validation.agent_id(agent_id)

    def _agent(self, agent_id: str | None) -> str:
        if agent_id is not None and validation.agent_id(agent_id) != self.agent_id:
            raise InvalidInputError(f"this MemorySpace belongs to {self.agent_id!r}, not {agent_id!r}")
        return self.agent_id

    def retrieve_recent_states(
        self, count: int = 5, memory_type: str | None = None, *, agent_id: str | None = None, offset: int = 0
    ) -> QueryResult:
        """The newest ``count`` memories (of ``memory_type`` if given), newest first."""
        return self.api.retrieve_recent(self._agent(agent_id), count, memory_type, offset=offset)

    def retrieve_by_time_range(
        self,
        start_step: int,
        end_step: int,
        memory_type: str | None = None,
        limit: int | None = None,
        *,
        agent_id: str | None = None,
        offset: int = 0,
    ) -> QueryResult:
        return self.api.retrieve_by_time_range(self._agent(agent_id), start_step, end_step, memory_type, limit, offset=offset)

    def retrieve_by_attributes(
        self,
        attributes: Mapping[str, Any],
        memory_type: str | None = None,
        limit: int | None = None,
        *,
        agent_id: str | None = None,
        offset: int = 0,
    ) -> QueryResult:
        return self.api.retrieve_by_attributes(self._agent(agent_id), attributes, memory_type, limit, offset=offset)

    def retrieve_most_important(
        self, k: int = 10, memory_type: str | None = None, *, agent_id: str | None = None, offset: int = 0
    ) -> QueryResult:
        return self.api.retrieve_most_important(self._agent(agent_id), k, memory_type, offset=offset)

    def retrieve_similar_states(
        self, query_state: Mapping[str, Any], k: int = 5, memory_type: str | None = None, *,
        agent_id: str | None = None, offset: int = 0,
    ) -> QueryResult:
        return self.api.retrieve_similar_states(self._agent(agent_id), query_state, k, memory_type, offset=offset)

    def search_by_embedding(
        self, query_embedding: Any, k: int = 10, memory_tiers: Any = None, memory_type: str | None = None,
        *, agent_id: str | None = None, offset: int = 0,
    ) -> QueryResult:
        return self.api.search_by_embedding(self._agent(agent_id), query_embedding, k, memory_tiers, memory_type, offset=offset)

    def search_by_content(
        self, content_query: str, k: int = 5, memory_type: str | None = None, memory_tiers: Any = None,
        *, agent_id: str | None = None, offset: int = 0,
    ) -> QueryResult:
        return self.api.search_by_content(self._agent(agent_id), content_query, k, memory_type, memory_tiers, offset=offset)

    def retrieve_by_location(
        self, center: Any, radius: float, memory_type: str | None = None, limit: int | None = None,
        *, agent_id: str | None = None, offset: int = 0,
    ) -> QueryResult:
        return self.api.retrieve_by_location(self._agent(agent_id), center, radius, memory_type, limit, offset=offset)

    def retrieve_nearest(
        self, center: Any, k: int = 5, memory_type: str | None = None, *, agent_id: str | None = None, offset: int = 0
    ) -> QueryResult:
        return self.api.retrieve_nearest(self._agent(agent_id), center, k, memory_type, offset=offset)

    def query(self) -> QueryBuilder:
        return self.api.query(self.agent_id)

    def get_memory(self, memory_id: str) -> dict[str, Any] | None:
        return self.api.get_memory(self.agent_id, memory_id)

    # Each method returns the API's answer as it is: over AsyncAgentMemoryAPI, an awaitable.
    def set_importance_score(self, memory_id: str, importance_score: float) -> None:
        return self.api.set_importance_score(self.agent_id, memory_id, importance_score)

    def clear_cache(self) -> None:
        return self.api.clear_cache()

    def set_cache_ttl(self, seconds: float) -> None:
        return self.api.set_cache_ttl(seconds)

    def __repr__(self) -> str:
        return f"MemorySpace(agent_id={self.agent_id!r})"
