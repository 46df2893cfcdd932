"""The index-backed queries (similar states, vectors, text, place, combined): run through the
in-process indices (memory._engine.search), answered through the same per-agent-invalidated
result cache as every other read."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from indices.catalog import IndexCatalog
from memory import validation
from memory._engine.reads import Answer, QueryResult, Reads
from memory._engine.search import Query, Searcher
from memory._engine.text_embedder import TextEmbedder
from memory.config import MemoryConfig
from tiers.errors import MemoryRetrievalException, TierUnavailableError


class Searches:
    def __init__(
        self, reads: Reads, catalog: IndexCatalog, searcher: Searcher, text_embedder: TextEmbedder,
        config: MemoryConfig,
    ):
        self.config = config
        self._reads = reads
        self._catalog = catalog
        self._searcher = searcher
        self._text_embedder = text_embedder

    def run(self, agent_id: str, kind: str, query: Query, skip: int = 0) -> QueryResult:
        """The query's answer without its first ``skip`` memories (``query.limit`` counts them)."""
        def compute() -> Answer:
            answer = _guarded(lambda: self._searcher.run(agent_id, query))
            return Answer(answer.records, [], answer.stamp, True, tuple(answer.extras))

        return self._reads.cached(agent_id, (kind, query.key()), compute, skip)

    def run_many(self, agent_ids: tuple[str, ...] | None, query: Query, skip: int = 0) -> QueryResult:
        """The query over several agents (None: every agent under the key prefix) as one answer."""
        def compute() -> Answer:
            agents = _guarded(self._catalog.t.agents) if agent_ids is None else agent_ids
            answer = _guarded(lambda: self._searcher.run_many(agents, query))
            return Answer(answer.records, [], None, True, tuple(answer.extras))

        return self._reads.uncached(compute, skip)

    def attributes(self, agent_id: str, query: Query, skip: int = 0) -> QueryResult:
        """retrieve_by_attributes: from the indices, or with ``degrade_reads`` while Redis is
        away, from LTM alone (flagged in ``failed_tiers``)."""
        def compute() -> Answer:
            try:
                answer = self._searcher.run(agent_id, query)
            except TierUnavailableError as exc:
                if not self.config.degrade_reads or exc.tier == "ltm":
                    raise MemoryRetrievalException(f"search could not read the tiers: {exc}") from exc
                return Answer(_guarded(lambda: self._searcher.ltm_alone(agent_id, query)), ["stm+im"], None)
            return Answer(answer.records, [], answer.stamp, True, tuple(answer.extras))

        return self._reads.cached(agent_id, ("attributes", query.key()), compute, skip)

    def state_query(self, state: Any) -> tuple[tuple[str, Any], ...]:
        """The leaves a likeness query compares (InvalidInputError: none, or not a dict)."""
        return validation.query_state(state, self.config.max_payload_bytes, self.config.search_config.attribute_paths)

    def encode_text(self, agent_id: str, text: str) -> np.ndarray:
        """The query's text vector, once every memory of the agent still waiting for one has it."""
        self._text_embedder.catch_up(agent_id)
        return self._text_embedder.encode_query(text)

    def rebuild(self, agents: list[str]) -> int:
        """Rebuild the agents' in-process indices from the tiers; how many memories were indexed."""
        total = 0
        for agent in agents:
            index = _guarded(functools.partial(self._catalog.rebuild, agent))
            total += sum(len(tier) for tier in index.tiers.values())
        return total


def _guarded(run: Any) -> Any:
    try:
        return run()
    except TierUnavailableError as exc:
        raise MemoryRetrievalException(f"search could not read the tiers: {exc}") from exc
