"""The search half of AgentMemoryAPI: similar states, raw vectors, text, place, combined queries.

Mixed into :class:`memory.engine.AgentMemoryAPI`; every answer goes through the same
per-agent-invalidated result cache as the other reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from indices.tier_index import Filter
from memory import validation
from memory.derive import positive_k, query_position, radius_value, unit_vector
from tiers.errors import InvalidInputError, MemoryRetrievalException, TierUnavailableError
from memory.search import Query

if TYPE_CHECKING:
    from memory.engine import QueryResult
    from memory.query import QueryBuilder


class SearchMethods:
    def retrieve_similar_states(
        self, agent_id: str, query_state: Mapping[str, Any], k: int = 5, memory_type: str | None = None
    ) -> "QueryResult":
        """The ``k`` memories whose state vectors are nearest ``query_state``, from every tier,
        best first; each carries ``similarity_score`` (cosine, 1.0 = same direction)."""
        agent_id = validation.agent_id(agent_id)
        vector = self._encode_state(query_state)
        query = Query(where=_types(memory_type), similar=("state", vector), similar_key=vector.tobytes(),
                      limit=positive_k(k))
        return self._search(agent_id, "similar", query)

    def search_by_embedding(
        self, agent_id: str, query_embedding: Any, k: int = 10, memory_tiers: Iterable[str] | None = None,
        memory_type: str | None = None,
    ) -> "QueryResult":
        """Memories nearest a vector of your own (``search_config.vector_dim`` values)."""
        agent_id = validation.agent_id(agent_id)
        vector = unit_vector(query_embedding, self.config.search_config.vector_dim)
        query = Query(where=_types(memory_type), similar=("state", vector), similar_key=vector.tobytes(),
                      tiers=validation.tiers(memory_tiers), limit=positive_k(k))
        return self._search(agent_id, "embedding", query)

    def search_by_content(
        self, agent_id: str, content_query: str, k: int = 5, memory_type: str | None = None,
        memory_tiers: Iterable[str] | None = None,
    ) -> "QueryResult":
        """Semantic text search over stored contents (the text model embeds the query and,
        first, every memory still waiting for its text vector)."""
        agent_id = validation.agent_id(agent_id)
        content_query = validation.query_text(content_query, self.config.max_payload_bytes)
        validation.text_search(self.config.search_config)
        k = positive_k(k)
        where, tiers = _types(memory_type), validation.tiers(memory_tiers)
        self._text_embedder.catch_up(agent_id)
        vector = self._text_embedder.encode_query(content_query)
        query = Query(where=where, similar=("text", vector), similar_key=vector.tobytes(), tiers=tiers, limit=k)
        return self._search(agent_id, "content", query)

    def retrieve_by_location(
        self, agent_id: str, center: Any, radius: float, memory_type: str | None = None, limit: int | None = None
    ) -> "QueryResult":
        """Memories whose position lies within ``radius`` of ``center``, nearest first, each with
        its ``distance``. Memories stored without a position are not in the spatial index."""
        agent_id = validation.agent_id(agent_id)
        query = Query(where=_types(memory_type), center=query_position(center), radius=radius_value(radius),
                      limit=validation.limit(limit))
        return self._search(agent_id, "location", query)

    def retrieve_nearest(self, agent_id: str, center: Any, k: int = 5, memory_type: str | None = None) -> "QueryResult":
        """The ``k`` memories stored nearest ``center`` in space, nearest first."""
        agent_id = validation.agent_id(agent_id)
        query = Query(where=_types(memory_type), center=query_position(center), limit=positive_k(k))
        return self._search(agent_id, "nearest", query)

    def query(self, agent_id: str) -> "QueryBuilder":
        """A combined query: ``api.query(a).between(1000, 2000).of_type("action")
        .near((10, 20), 5).similar_to(state).top(10)``."""
        from memory.query import QueryBuilder

        return QueryBuilder(self, validation.agent_id(agent_id))

    def rebuild_indices(self, agent_id: str | None = None) -> int:
        """Rebuild this process's in-memory indices from the tiers (all agents it knows, or one);
        returns how many memories were indexed."""
        self._check_open()
        agents = [validation.agent_id(agent_id)] if agent_id is not None else self.list_agents()
        total = 0
        for agent in agents:
            index = self._guarded(lambda: self._catalog.rebuild(agent))
            total += sum(len(tier) for tier in index.tiers.values())
        return total

    # -- plumbing -----------------------------------------------------------------------------
    def _search(self, agent_id: str, kind: str, query: Query) -> "QueryResult":
        from memory.engine import _Answer

        def compute() -> _Answer:
            answer = self._guarded(lambda: self._searcher.run(agent_id, query))
            return _Answer(answer.records, [], answer.stamp, True, tuple(answer.extras))

        return self._cached(agent_id, (kind, query.key()), compute)

    def _guarded(self, run: Any) -> Any:
        try:
            return run()
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"search could not read the tiers: {exc}") from exc

    def _encode_state(self, state: Any) -> np.ndarray:
        if not isinstance(state, Mapping):
            raise InvalidInputError(f"query_state must be a dict, got {type(state).__name__}")
        encoder = self._state_encoder
        if encoder is None:
            raise InvalidInputError("state vectors are off (search_config.state_vectors=False)")
        try:
            return encoder.encode(state)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(f"query_state cannot be encoded: {exc}") from None


def _types(memory_type: str | None) -> Filter:
    memory_type = validation.optional_memory_type(memory_type)
    return Filter(memory_types=None if memory_type is None else (memory_type,))
