"""AgentMemoryAPI: every write lands in STM; reads span STM, IM and LTM as one ordered answer.

The class is the public edge: it validates what a caller passes and hands the work to its parts
(memory._engine: Writes, Reads, Searches, the Maintainer)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from embeddings.state import StateEncoder
from indices.catalog import IndexCatalog, IndexSettings
from indices.keywords import words
from indices.tier_index import Filter
from memory import validation
from memory._engine import transfer
from memory._engine.derive import positive_k, query_position, radius_value, unit_vector
from memory._engine.maintenance import LTM_TO_IM, Maintainer, MaintenanceReport
from memory._engine.reads import QueryResult, Reads
from memory._engine.scheduling import BackgroundMaintenance, InlineMaintenance, MaintenanceScheduler
from memory._engine.search import Query, Searcher
from memory._engine.searches import Searches
from memory._engine.statistics import gather
from memory._engine.text_embedder import TextEmbedder
from memory._engine.transfer import ImportReport
from memory._engine.writes import Writes
from memory.cache import ResultCache
from memory.config import MemoryConfig
from memory.query import QueryBuilder
from memory.space import MemorySpace
from tiers.connection import Connection, resolve
from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryMaintenanceException,
    MemoryNotFoundError,
    MemoryRetrievalException,
    MemoryStoreException,
    TierUnavailableError,
)
from tiers.ltm_schema import make_engine
from tiers.tierset import TierSet, TierSettings, open_tiers

log = logging.getLogger(__name__)


class AgentMemoryAPI:
    """The tiered memory engine. An ordinary object: build as many as you like, close each."""

    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        redis_client: Any = None,
        ltm_engine: Any = None,
        clock: Callable[[], float] = time.time,
        adopt_deployment: bool = False,
    ):
        """``adopt_deployment``: bind the key prefix to this engine's LTM even though Redis names
        another deployment's (tiers/deployment.py), for when that LTM is lost for good: what it
        held is gone, what Redis holds stays. Without it such an engine is refused."""
        if config is None:
            config = MemoryConfig()
        if not isinstance(config, MemoryConfig):
            raise MemoryConfigException(f"config must be a MemoryConfig, got {type(config).__name__}")
        validation.engine_parts(redis_client, ltm_engine, clock)
        self.config = config
        self._clock = clock
        self._closed = False
        self._holding = threading.local()  # .agents: the agents this thread holds in exclusive blocks
        self._connection = self._connect(config, redis_client)
        try:
            self._tiers = self._build_tiers(config, ltm_engine, adopt_deployment)
        except BaseException:
            self._connection.close()
            raise
        # fakeredis runs in this process, under the GIL: threads would only add switching
        workers = config.maintenance_workers if self.mode == "redis" and self._threads else 1
        self._maintainer = Maintainer(self._tiers, config, clock, workers)
        self._cache = ResultCache(config.cache_size, config.cache_ttl)
        search = config.search_config
        state_encoder = StateEncoder(search.vector_dim) if search.state_vectors else None
        self._catalog = IndexCatalog(self._tiers, IndexSettings(
            state_dim=search.vector_dim, cell_size=search.cell_size, exact_limit=search.exact_limit,
            max_agents=search.index_agents, memory_budget=search.index_memory_mb << 20,
            snapshot_dir=os.path.join(config.data_dir, "indices", config.key_prefix),
            attribute_paths=search.attribute_paths))
        self._text_embedder = TextEmbedder(self._tiers, search)
        self._reads = Reads(self._tiers, self._cache, config, self._check_open)
        self._maintenance: MaintenanceScheduler = (
            BackgroundMaintenance(self._maintainer, config.maintenance_lock_timeout)
            if config.maintenance_mode == "background" else InlineMaintenance(self._maintainer))
        self._writes = Writes(self._tiers, config, clock, state_encoder, self._text_embedder, self._maintenance,
                              held=self._holds)
        self._searches = Searches(self._reads, self._catalog, Searcher(self._catalog, self._tiers.fetch_many),
                                  self._text_embedder, config)
        self._tiers.scripts.on_reload = self._check_incarnation  # Redis lost the scripts: it restarted
        server = self._connection.embedded_server
        if server is not None and server.unclean and config.key_prefix not in server.reconciled:
            try:
                self._reconcile_after_crash(server)
            except BaseException:
                self.close()
                raise

    # Whether the engine may run work in threads of its own (maintenance workers): not when its
    # Redis connections wait on an event loop (memory/async_api.py).
    _threads = True

    def _connect(self, config: MemoryConfig, redis_client: Any) -> Connection:
        return resolve(data_dir=config.data_dir, url=config.redis_url_option(), client=redis_client,
                       socket_timeout=config.redis_timeout)

    def _reconcile_after_crash(self, server: Any) -> None:
        """The embedded engine's snapshot is older than its LTM when its process was killed:
        memories moved to LTM after the snapshot are there, and their copies in the snapshot go
        (tiers/tierset.py). What Redis held only since the snapshot is lost (README: Guarantees)."""
        try:
            agents = self._tiers.agents()
            removed = self._tiers.reconcile_with_ltm(agents, LTM_TO_IM)
            self._maintainer.heal(agents)  # promotions the snapshot caught half-way
        except (TierUnavailableError, MemoryMaintenanceException) as exc:
            raise MemoryConfigException(f"cannot reconcile the embedded snapshot with LTM: {exc}") from exc
        server.reconciled.add(self.config.key_prefix)
        server.save()
        log.warning("the embedded engine in %s was not closed: its snapshot was reconciled with LTM "
                    "(%d copies of memories LTM holds dropped); what it stored since the snapshot is lost",
                    server.data_dir, removed)

    def _check_incarnation(self) -> None:
        """Drop every cached answer and in-process index when Redis lost the deployment's data
        since this process last looked (tiers/deployment.py). Per-agent stamps catch the rest:
        an agent's incarnation is read with every answer."""
        try:
            moved = self._tiers.incarnation_moved()
        except TierUnavailableError as exc:
            log.warning("could not check the deployment's incarnation: %s", exc)
            return
        if moved:
            log.warning("Redis lost this deployment's data: cached answers and in-process indices dropped")
            self._cache.clear()
            self._catalog.forget()

    def _build_tiers(self, config: MemoryConfig, ltm_engine: Any, adopt: bool) -> TierSet:
        ltm_cfg = config.ltm_config
        db_path = ltm_cfg.db_path or os.path.join(config.data_dir, "ltm.sqlite")
        try:
            engine = ltm_engine if ltm_engine is not None else make_engine(ltm_cfg.url, db_path, generic_plans=True)
        except (TierUnavailableError, ImportError) as exc:
            raise MemoryConfigException(f"cannot open the long-term store: {exc}") from exc
        server = self._connection.embedded_server
        return open_tiers(
            self._connection.client, engine, TierSettings(
                key_prefix=config.key_prefix, change_log_limit=config.change_log_limit,
                compression_level=config.im_config.compression_level, dictionary_size=ltm_cfg.dictionary_size,
                dictionary_samples=ltm_cfg.dictionary_samples, ltm_partitions=ltm_cfg.partitions,
                wait_replicas=config.wait_replicas, retention_rate=config.retention_rate),
            owned_engine=ltm_engine is None, redis_where=self._connection.describe(),
            persist_redis=server.save if server is not None else None, adopt=adopt)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"redis"`` or ``"embedded"``."""
        return self._connection.mode

    def close(self) -> None:
        """Save the search indices this engine holds (a restart loads them), then release Redis, the
        SQL engine and (embedded mode) snapshot STM and IM to disk."""
        if self._closed:
            return
        self._closed = True
        self._maintenance.close()
        self._text_embedder.close()
        try:
            self._catalog.save()
        except (MemoryAPIException, OSError) as exc:  # the indices are derived: a restart builds them instead
            log.warning("could not save the search indices: %s", exc)
        self._cache.clear()
        self._tiers.ltm.close()
        self._connection.close()

    def __enter__(self) -> AgentMemoryAPI:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryAPIException("this AgentMemoryAPI is closed")

    @property
    def clock(self) -> Callable[[], float]:
        """The clock this engine stamps memories and ages tiers with (unix seconds)."""
        return self._clock

    @contextmanager
    def exclusive(self, agent_id: str) -> Iterator[None]:
        """Hold the agent's maintenance lease for a block, for a read-then-write on its memories
        (find one, then replace or delete it): while the block runs no maintenance moves them,
        in this process or another, and no other exclusive block of the agent runs (plain stores
        are not held back). Waits up to ``maintenance_lock_timeout`` for one that is running;
        keep the block shorter than that too, or its lease runs out. Blocks nest in one thread
        (:meth:`delete_memories` inside one uses the lease held). The maintenance the block's
        stores make due runs when it ends."""
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        held = self._held_agents()
        if agent_id in held:
            yield
            return
        lease = ExitStack()
        try:
            lease.enter_context(self._maintainer.holding(agent_id, wait=self.config.maintenance_lock_timeout))
        except (TierUnavailableError, MemoryMaintenanceException) as exc:
            raise MemoryStoreException(f"could not hold agent {agent_id}: {exc}") from exc
        with lease:
            held.add(agent_id)
            try:
                yield
            finally:
                held.discard(agent_id)
        self._writes.maintain_if_due(agent_id)

    def _held_agents(self) -> set[str]:
        agents = getattr(self._holding, "agents", None)
        if agents is None:
            agents = self._holding.agents = set()
        return agents

    def _holds(self, agent_id: str) -> bool:
        return agent_id in self._held_agents()

    # -- writes ----------------------------------------------------------------------------------
    def store_agent_state(
        self, agent_id: str, state_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        """Store a state. ``embedding``: your own vector for it (``search_config.vector_dim``
        values) instead of the state encoder's."""
        self._check_open()
        return self._writes.store_one(agent_id, state_data, step_number, priority, "state", embedding)

    def store_agent_interaction(
        self, agent_id: str, interaction_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        self._check_open()
        return self._writes.store_one(agent_id, interaction_data, step_number, priority, "interaction", embedding)

    def store_agent_action(
        self, agent_id: str, action_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        self._check_open()
        return self._writes.store_one(agent_id, action_data, step_number, priority, "action", embedding)

    def store_many(self, records: Iterable[Mapping[str, Any]], *, idempotency_key: str | None = None) -> list[str]:
        """Store many memories in one streamed round trip; all are validated before any is written.

        Each item: ``agent_id``, ``data``, ``step_number``, optional ``memory_type`` ("state"),
        ``priority`` (1.0) and ``embedding`` (a vector of your own). Returns the new ids in input order.

        Each agent's records are written together or not at all. When Redis fails part-way the
        call raises StoreIncompleteError, naming the agents whose records landed. With an
        ``idempotency_key`` (any string naming this batch, e.g. ``"run-7/step-1200"``) the ids
        follow from the key and each record's position, and records already stored are skipped:
        calling again with the same key and records (after a failure, or twice) stores each
        record once and returns the same ids.
        """
        self._check_open()
        return self._writes.store_many(records, idempotency_key)

    # -- point operations --------------------------------------------------------------------------
    def get_memory(self, agent_id: str, memory_id: str) -> dict[str, Any] | None:
        """One memory by id from whichever tier holds it, or None.

        This is the focused read: it counts toward ``retrieval_count`` (queries do not), refreshes
        the memory's age for retention, and enough of them bring an LTM memory back to IM.
        """
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        memory_id = validation.memory_id(memory_id)
        found = self._reads.memory(agent_id, memory_id, self._clock())
        return None if found is None else found.to_dict()

    def set_importance_score(self, agent_id: str, memory_id: str, importance_score: float) -> None:
        """Change a memory's importance in every tier that holds it."""
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        memory_id = validation.memory_id(memory_id)
        score = validation.importance(importance_score, "importance_score")
        tiers = self._tiers
        try:
            found = tiers.set_redis_importance(agent_id, memory_id, score)
            if tiers.ltm.set_importance(agent_id, memory_id, score, changed=tiers.ltm_stamp(agent_id)):
                found += 1
                tiers.meta.note(agent_id, "upd", "ltm", [memory_id])  # logs the change, bumps the version
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"could not set the importance of {memory_id}: {exc}") from exc
        if not found:
            raise MemoryNotFoundError(f"agent {agent_id!r} has no memory {memory_id!r}")

    def delete_memory(self, agent_id: str, memory_id: str) -> bool:
        """Delete one memory from whichever tier holds it; False when none did. See :meth:`delete_memories`."""
        return self.delete_memories(agent_id, [memory_id]) == 1

    def delete_memories(self, agent_id: str, memory_ids: Iterable[str]) -> int:
        """Delete memories of an agent from whichever tiers hold them, with every index entry, read
        count and queue place: STM's and IM's in one round trip, then LTM's rows. Returns how many
        of the ids some tier held (an id none holds is passed over).

        Holds the agent's maintenance lease meanwhile (as :meth:`exclusive`), so a move running in
        another process cannot write a deleted memory back into the tier it was leaving for. On
        the embedded engine a delete, like a store, is on disk from the next snapshot (close).
        """
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        ids = validation.memory_ids(memory_ids)
        if not ids:
            return 0
        try:
            with self.exclusive(agent_id):
                removed = self._tiers.delete_memories(agent_id, ids)
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"could not delete memories of agent {agent_id}: {exc}") from exc
        return len(removed)

    def clear_agent_memory(self, agent_id: str) -> int:
        """Delete every memory of an agent from every tier; returns how many there were.

        Holds the agent's maintenance lease meanwhile, so no maintainer in another process can
        write a memory back into LTM halfway through.
        """
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        try:
            with self._maintainer.holding(agent_id, wait=self.config.maintenance_lock_timeout):
                held = self._tiers.clear_agent(agent_id, time.time_ns())
        except (TierUnavailableError, MemoryMaintenanceException) as exc:
            raise MemoryStoreException(f"could not clear agent {agent_id}: {exc}") from exc
        self._writes.forget(agent_id)
        return held

    # -- queries by step, importance and attributes -----------------------------------------------
    def retrieve_by_time_range(
        self,
        agent_id: str,
        start_step: int,
        end_step: int,
        memory_type: str | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
    ) -> QueryResult:
        """Memories with ``start_step <= step_number <= end_step``, in step order (after the
        first ``offset`` of them: every list-returning query pages this way)."""
        agent_id = validation.agent_id(agent_id)
        start = validation.step(start_step, "start_step")
        end = validation.step(end_step, "end_step")
        memory_type = validation.optional_memory_type(memory_type)
        skip, fetch = validation.page(validation.limit(limit), offset)
        if start > end:
            raise InvalidInputError(f"start_step {start} is after end_step {end}")
        return self._range(agent_id, {"by": "step", "lo": start, "hi": end, "memory_type": memory_type,
                                      "reverse": False, "limit": fetch}, skip)

    def retrieve_recent(self, agent_id: str, count: int = 5, memory_type: str | None = None, *,
                        offset: int = 0) -> QueryResult:
        """The ``count`` newest memories (highest step first)."""
        agent_id = validation.agent_id(agent_id)
        memory_type = validation.optional_memory_type(memory_type)
        skip, fetch = validation.page(validation.limit(count, "count"), offset)
        return self._range(agent_id, {"by": "step", "lo": None, "hi": None, "memory_type": memory_type,
                                      "reverse": True, "limit": fetch}, skip)

    def retrieve_most_important(self, agent_id: str, k: int = 10, memory_type: str | None = None, *,
                                offset: int = 0) -> QueryResult:
        """The ``k`` memories with the highest importance score (importance index)."""
        agent_id = validation.agent_id(agent_id)
        memory_type = validation.optional_memory_type(memory_type)
        skip, fetch = validation.page(validation.limit(k, "k"), offset)
        return self._range(agent_id, {"by": "importance", "lo": None, "hi": None, "memory_type": memory_type,
                                      "reverse": True, "limit": fetch}, skip)

    def _range(self, agent_id: str, query: dict[str, Any], skip: int) -> QueryResult:
        return self._reads.cached(agent_id, ("range", tuple(query.items())), lambda: self._reads.range(agent_id, query),
                                  skip)

    def retrieve_by_attributes(
        self,
        agent_id: str,
        attributes: Mapping[str, Any],
        memory_type: str | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
    ) -> QueryResult:
        """Memories whose contents satisfy every condition, in step order: ``{"outcome":
        "success"}`` (equality on a dot path), ``{"reward": {"$gte": 5}}`` ($eq $ne $gt $gte $lt
        $lte $in), answered from each tier's attribute index."""
        agent_id = validation.agent_id(agent_id)
        conditions = validation.attributes(attributes, self.config.max_payload_bytes)
        skip, fetch = validation.page(validation.limit(limit), offset)
        query = Query(where=_types(memory_type), conditions=conditions, limit=fetch)
        return self._searches.attributes(agent_id, query, skip)

    # -- search: similar states, vectors, text, place, combined -------------------------------------
    def retrieve_similar_states(
        self, agent_id: str, query_state: Mapping[str, Any], k: int = 5, memory_type: str | None = None, *,
        offset: int = 0,
    ) -> QueryResult:
        """The ``k`` memories whose contents are most like ``query_state``, from every tier, best
        first, compared leaf by leaf on the query's dot paths: numbers scaled by the spread seen
        at that path, other values equal or not (docs/search.md). Each carries
        ``state_distance`` (0.0: the same values) and ``similarity_score`` (1 / (1 + distance))."""
        agent_id = validation.agent_id(agent_id)
        state = self._searches.state_query(query_state)
        skip, fetch = validation.page(positive_k(k), offset)
        query = Query(where=_types(memory_type), state=state, limit=fetch)
        return self._searches.run(agent_id, "similar", query, skip)

    def search_by_embedding(
        self, agent_id: str, query_embedding: Any, k: int = 10, memory_tiers: Iterable[str] | None = None,
        memory_type: str | None = None, *, offset: int = 0,
    ) -> QueryResult:
        """Memories nearest a vector of your own (``search_config.vector_dim`` values)."""
        agent_id = validation.agent_id(agent_id)
        vector = unit_vector(query_embedding, self.config.search_config.vector_dim)
        skip, fetch = validation.page(positive_k(k), offset)
        query = Query(where=_types(memory_type), similar=("state", vector), similar_key=vector.tobytes(),
                      tiers=validation.tiers(memory_tiers), limit=fetch)
        return self._searches.run(agent_id, "embedding", query, skip)

    def search_by_content(
        self, agent_id: str, content_query: str, k: int = 5, memory_type: str | None = None,
        memory_tiers: Iterable[str] | None = None, *, offset: int = 0,
    ) -> QueryResult:
        """Text search over stored contents, hybrid: the text model's ranking (it embeds the
        query and, first, every memory still waiting for its text vector) and a BM25 keyword
        ranking, fused by reciprocal rank. Each answer carries ``fused_score`` and, where they
        apply, ``similarity_score`` and ``keyword_score``."""
        agent_id = validation.agent_id(agent_id)
        content_query = validation.query_text(content_query, self.config.max_payload_bytes)
        validation.text_search(self.config.search_config)
        skip, fetch = validation.page(positive_k(k), offset)
        where, tiers = _types(memory_type), validation.tiers(memory_tiers)
        vector = self._searches.encode_text(agent_id, content_query)
        query = Query(where=where, similar=("text", vector), similar_key=vector.tobytes(), tiers=tiers, limit=fetch,
                      keywords=tuple(words(content_query)))
        return self._searches.run(agent_id, "content", query, skip)

    def retrieve_by_location(
        self, agent_id: str, center: Any, radius: float, memory_type: str | None = None, limit: int | None = None,
        *, offset: int = 0,
    ) -> QueryResult:
        """Memories whose position lies within ``radius`` of ``center``, nearest first, each with
        its ``distance``. Memories stored without a position are not in the spatial index."""
        agent_id = validation.agent_id(agent_id)
        skip, fetch = validation.page(validation.limit(limit), offset)
        query = Query(where=_types(memory_type), center=query_position(center), radius=radius_value(radius),
                      limit=fetch)
        return self._searches.run(agent_id, "location", query, skip)

    def retrieve_nearest(self, agent_id: str, center: Any, k: int = 5, memory_type: str | None = None, *,
                         offset: int = 0) -> QueryResult:
        """The ``k`` memories stored nearest ``center`` in space, nearest first."""
        agent_id = validation.agent_id(agent_id)
        skip, fetch = validation.page(positive_k(k), offset)
        query = Query(where=_types(memory_type), center=query_position(center), limit=fetch)
        return self._searches.run(agent_id, "nearest", query, skip)

    def query(self, agent_id: str) -> QueryBuilder:
        """A combined query: ``api.query(a).between(1000, 2000).of_type("action")
        .near((10, 20), 5).similar_to(state).top(10)``."""
        return QueryBuilder(self._searches, validation.agent_id(agent_id))

    def query_agents(self, agent_ids: Iterable[str] | None = None) -> QueryBuilder:
        """A combined query over several agents' memories (None: every agent under the key
        prefix), answered as one: ``api.query_agents().of_type("action").where({"outcome":
        "success"}).all()``. Each agent's part comes from its own indices; answers are not cached."""
        self._check_open()
        return QueryBuilder(self._searches, None if agent_ids is None else validation.agent_ids(agent_ids))

    def get_memory_space(self, agent_id: str) -> MemorySpace:
        return MemorySpace(self, validation.agent_id(agent_id))

    def rebuild_indices(self, agent_id: str | None = None) -> int:
        """Rebuild this process's in-memory indices from the tiers (all agents it knows, or one),
        and the retention keys maintenance reads in Redis; returns how many memories were indexed."""
        self._check_open()
        agents = [validation.agent_id(agent_id)] if agent_id is not None else self.list_agents()
        for agent in agents:
            self._tiers.rebuild_retention(agent)
        return self._searches.rebuild(agents)

    # -- export and import ------------------------------------------------------------------------
    def export_memories(self, agent_ids: Iterable[str] | None = None, *, vectors: bool = False,
                        tiers: bool = False) -> Iterator[dict[str, Any]]:
        """Every memory of these agents (default: every agent), agent by agent in step order, as
        JSON-ready dicts that :meth:`import_memories` stores again as they were; ``vectors``: with
        their vectors, ``tiers``: with the tier holding each. Read a page at a time, so an export of
        any size streams (memory/_engine/transfer.py)."""
        self._check_open()
        agents = self.list_agents() if agent_ids is None else validation.agent_ids(agent_ids)
        return transfer.export_memories(self._reads, agents, vectors=validation.flag(vectors, "vectors"),
                                        tiers=validation.flag(tiers, "tiers"))

    def import_memories(self, memories: Iterable[Any], *, tiers: bool = False,
                        progress: Callable[[ImportReport], None] | None = None) -> ImportReport:
        """Store exported memories (dicts as :meth:`export_memories` gives them, an export file's
        header line passed over) as they were, in batches; a memory some tier holds already is
        skipped, so importing twice stores each once. ``tiers``: each back in the tier it was
        exported from (else STM, and maintenance moves them down). ``progress`` gets the report so
        far after every batch. A memory that does not read as one raises InvalidInputError naming
        its position, the batches before it stored."""
        self._check_open()
        keep_tiers = validation.flag(tiers, "tiers")
        report, agents = ImportReport(), set[str]()
        for batch in transfer.batches(memories, self.config.max_payload_bytes, report):
            stored, skipped = self._writes.restore(batch, keep_tiers)
            report.imported += stored
            report.skipped += skipped
            agents.update(record.agent_id for record in batch)
            report.agents = len(agents)
            if progress is not None:
                progress(report)
        return report

    # -- maintenance and statistics -----------------------------------------------------------------
    def force_memory_maintenance(self, agent_id: str | None = None, *,
                                 progress: Callable[[str], None] | None = None) -> MaintenanceReport:
        """Run maintenance now for one agent or all (those with work, by ``maintenance_workers``
        threads); returns what moved where. ``progress`` is called with each agent's id once it
        is done, from a maintenance thread when there are several."""
        self._check_open()
        self._check_incarnation()
        self._maintenance.settle()  # a run of the background thread would hold an agent's lease
        if agent_id is not None:
            agents = [validation.agent_id(agent_id)]
            report = self._maintainer.run(agents, progress=progress)
        else:
            agents = self.list_agents()
            report = self._maintainer.run(agents, only_if_needed=True, progress=progress)
        for agent in agents:
            self._writes.forget(agent)
        return report

    def list_agents(self) -> list[str]:
        """Every agent holding memories under this key prefix, in Redis or in LTM: the agent
        registry's (tiers/registry.py, kept by every store, correct across cluster nodes) and
        LTM's, the same list from every process."""
        self._check_open()
        try:
            return self._tiers.agents()
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"could not list agents: {exc}") from exc

    def get_memory_statistics(self, agent_id: str | None = None) -> dict[str, Any]:
        """Counts, bytes and compression per tier, type distribution, importance, cache hit rate."""
        self._check_open()
        agents = [validation.agent_id(agent_id)] if agent_id is not None else self.list_agents()
        try:
            stats = gather(self._tiers, agents, agent_id)
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"could not gather statistics: {exc}") from exc
        cache = self._cache.stats()
        return {"agent_id": agent_id, "agents": len(agents), "mode": self.mode, **stats,
                "cache": cache, "cache_hit_rate": cache["hit_rate"], "indices": self._catalog.stats(),
                "deployment": self.deployment}

    def get_process_statistics(self) -> dict[str, Any]:
        """This engine's own figures, read without a round trip to Redis or SQL (so as often as
        you like): its result ``cache`` and search ``indices`` as in get_memory_statistics, and
        ``maintenance``: what its maintenance runs, forced and automatic, did since it opened
        (``runs``, ``failed``, ``agents``, ``stm_to_im``, ``im_to_ltm``, ``ltm_to_im``, ``moved``,
        ``healed``, ``reads_flushed``, ``busy``, ``seconds``)."""
        return {"mode": self.mode, "cache": self._cache.stats(), "indices": self._catalog.stats(),
                "maintenance": self._maintainer.totals()}

    @property
    def deployment(self) -> dict[str, Any]:
        """The deployment this engine's key prefix and LTM belong to (tiers/deployment.py): its
        ``id``, Redis's ``incarnation`` (a new one each time Redis lost the deployment's data),
        ``redis_lost`` (this engine found Redis without it), and where both stores are."""
        tiers, found = self._tiers, self._tiers.deployment
        return {"id": found.deployment_id if found else None, "incarnation": found.incarnation if found else None,
                "redis_lost": bool(found and found.redis_lost), "key_prefix": tiers.keys.prefix,
                "redis": tiers.binding.redis_where if tiers.binding else None,
                "ltm": tiers.binding.ltm_where if tiers.binding else None}

    # -- the result cache ---------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._cache.clear()

    def set_cache_ttl(self, seconds: float) -> None:
        try:
            self._cache.set_ttl(seconds)
        except ValueError as exc:
            raise MemoryConfigException(str(exc)) from None


def _types(memory_type: str | None) -> Filter:
    memory_type = validation.optional_memory_type(memory_type)
    return Filter(memory_types=None if memory_type is None else (memory_type,))

