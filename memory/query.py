"""A combined query, built by chaining conditions and run by ``top(n)`` or ``all()``.

    api.query("agent-1").between(1000, 2000).of_type("action").near((10, 20), 5).similar_to(state).top(10)

Ranking: by ``rank_by``'s weights when given, else by similarity when ``similar_to`` is given,
else by distance when a place is given, else by step. Every condition narrows the same
candidates, so ``top(n)`` returns the n best memories that pass all of them, and never fewer
while at least n pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from memory import validation
from memory._engine import ranking
from memory._engine.derive import positive_k, query_position, radius_value, unit_vector
from memory._engine.search import Query
from tiers.errors import InvalidInputError

if TYPE_CHECKING:
    from memory._engine.reads import QueryResult
    from memory._engine.searches import Searches


class QueryBuilder:
    """Built by ``AgentMemoryAPI.query(agent_id)``; each condition returns a new builder."""

    def __init__(self, searches: Searches, agents: str | tuple[str, ...] | None, query: Query | None = None):
        """``agents``: one agent's id, several (``query_agents``), or None for every agent."""
        self._searches = searches
        self._agents = agents
        self._query = query or Query()

    def _with(self, **changes: Any) -> QueryBuilder:
        return QueryBuilder(self._searches, self._agents, replace(self._query, **changes))

    def _where(self, **changes: Any) -> QueryBuilder:
        return self._with(where=replace(self._query.where, **changes))

    def between(self, start_step: int, end_step: int) -> QueryBuilder:
        start, end = validation.step(start_step, "start_step"), validation.step(end_step, "end_step")
        if start > end:
            raise InvalidInputError(f"start_step {start} is after end_step {end}")
        return self._where(lo_step=start, hi_step=end)

    def of_type(self, *memory_types: str) -> QueryBuilder:
        if not memory_types:
            raise InvalidInputError("of_type needs at least one memory type")
        return self._where(memory_types=tuple(sorted({validation.memory_type(t) for t in memory_types})))

    def min_importance(self, score: float) -> QueryBuilder:
        return self._where(min_importance=validation.number(score, "min_importance"))

    def where(self, attributes: Mapping[str, Any]) -> QueryBuilder:
        """Contents satisfying every condition, ``dot.path: value`` or ``dot.path: {"$gte": 5}``
        (as retrieve_by_attributes); chained wheres all apply."""
        wanted = validation.attributes(attributes, self._searches.config.max_payload_bytes)
        return self._with(conditions=self._query.conditions + wanted)

    def near(self, center: Any, radius: float) -> QueryBuilder:
        return self._with(center=query_position(center), radius=radius_value(radius))

    def in_box(self, low: Any, high: Any) -> QueryBuilder:
        """Only memories placed in the axis-aligned box between corners ``low`` and ``high``."""
        low, high = query_position(low, "the box's low corner"), query_position(high, "the box's high corner")
        if any(a > b for a, b in zip(low, high)):
            raise InvalidInputError(f"the box's low corner {low} is above its high corner {high} on some axis")
        return self._with(box=(low, high))

    def nearest_to(self, center: Any) -> QueryBuilder:
        """Rank by distance from ``center`` (no radius): with top(n), the n nearest."""
        return self._with(center=query_position(center), radius=None)

    def similar_to(self, state: Mapping[str, Any]) -> QueryBuilder:
        """Rank by likeness to ``state``, as retrieve_similar_states does (needs top(n))."""
        return self._with(state=self._searches.state_query(state), similar=None, similar_key=b"")

    def similar_to_embedding(self, vector: Any) -> QueryBuilder:
        unit = unit_vector(vector, self._searches.config.search_config.vector_dim)
        return self._with(similar=("state", unit), similar_key=unit.tobytes(), state=None)

    def rank_by(self, preset: str | None = None, *, recency: float | None = None, importance: float | None = None,
                relevance: float | None = None, decay: float = 0.995) -> QueryBuilder:
        """Rank by a weighted sum of recency (``decay ** (newest step - step)``), importance and
        relevance (similarity to ``similar_to``'s state or vector), each min-max normalised over
        the memories that pass; or by a preset: "generative_agents" (0.5 recency, 2 importance,
        3 relevance) or "agent_memory_server" (0.2 recency, 0.8 relevance). Each memory answered
        carries its ``rank_score``."""
        rank = ranking.rank_by(preset, recency, importance, relevance, decay)
        return self._with(rank=rank)

    def in_tiers(self, tiers: Iterable[str]) -> QueryBuilder:
        return self._with(tiers=validation.tiers(tiers))

    def top(self, n: int, *, offset: int = 0) -> QueryResult:
        """The ``n`` best that pass, after the first ``offset`` of them (a page)."""
        skip, fetch = validation.page(positive_k(n, "n"), offset)
        return self._run(replace(self._query, limit=fetch), skip)

    def all(self, *, offset: int = 0) -> QueryResult:
        query = self._query
        ranked = query.similar is not None or query.state is not None or (query.center is not None and query.radius is None)
        if query.rank is None and ranked:
            raise InvalidInputError("a ranked query (similar_to, nearest_to) needs top(n)")
        skip, _ = validation.page(None, offset)
        return self._run(replace(self._query, limit=None), skip)

    def _run(self, query: Query, skip: int) -> QueryResult:
        if query.rank is not None and query.rank.relevance and query.similar is None and query.state is None:
            raise InvalidInputError("ranking by relevance needs similar_to(state) or similar_to_embedding(vector)")
        if isinstance(self._agents, str):
            return self._searches.run(self._agents, "query", query, skip)
        return self._searches.run_many(self._agents, query, skip)

    def __repr__(self) -> str:
        return f"QueryBuilder({self._agents!r}, {self._query!r})"
