"""AgentMemoryAPI: every write lands in STM; reads span STM, IM and LTM as one ordered answer."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from embeddings.state import StateEncoder
from memory import validation
from memory.attributes import matcher
from memory.cache import MISS, ResultCache
from memory.config import MemoryConfig
from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryMaintenanceException,
    MemoryNotFoundError,
    MemoryRetrievalException,
    MemoryStoreException,
    OutcomeUnknownError,
    StoreIncompleteError,
    TierUnavailableError,
)
from memory.maintenance import LTM_TO_IM, Maintainer, MaintenanceReport
from memory.merge import by_importance, by_step, merge_tiers
from memory.derive import PositionReader, unit_vector
from memory.ids import MemoryIds
from tiers.record import NO_EMBEDDINGS, Embeddings, MemoryRecord
from memory.search import Searcher
from memory.search_api import SearchMethods
from memory.space import MemorySpace
from memory.text_embedder import TextEmbedder
from indices.catalog import IndexCatalog, IndexSettings
from memory.statistics import gather
from tiers.bookkeeping import Stamp
from tiers.connection import resolve
from tiers.ltm_schema import make_engine
from tiers.tierset import RedisRead, TierSet, TierSettings, open_tiers

log = logging.getLogger(__name__)


# A validated memory not yet written: (memory_id, agent_id, step, memory_type, importance,
# contents, the data as given, the caller's own vector as Embeddings or None)
_Checked = tuple[str, str, int, str, float, bytes, Any, "Embeddings | None"]
_SETTLE_ATTEMPTS = 4  # reads repeated while promotions overlap them (1 + 2 + 4 ms of waiting)


class QueryResult(list):
    """A list of memories; ``failed_tiers`` names tiers that did not answer (degraded reads)."""

    def __init__(self, items: Iterable[Any] = (), failed_tiers: Sequence[str] = ()):
        super().__init__(items)
        self.failed_tiers = tuple(failed_tiers)

    @property
    def degraded(self) -> bool:
        return bool(self.failed_tiers)


class AgentMemoryAPI(SearchMethods):
    """The tiered memory engine. An ordinary object: build as many as you like, close each.

    The search methods (similar states, vectors, text, place, combined queries) are in
    :mod:`memory.search_api`."""

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
        self._connection = resolve(data_dir=config.data_dir, url=config.redis_url_option(), client=redis_client,
                                   socket_timeout=config.redis_timeout)
        try:
            self._tiers = self._build_tiers(config, ltm_engine, adopt_deployment)
        except BaseException:
            self._connection.close()
            raise
        # fakeredis runs in this process, under the GIL: threads would only add switching
        workers = config.maintenance_workers if self.mode == "redis" else 1
        self._maintainer = Maintainer(self._tiers, config, clock, workers)
        self._cache = ResultCache(config.cache_size, config.cache_ttl)
        self._ids = MemoryIds()
        search = config.search_config
        self._state_encoder = StateEncoder(search.vector_dim) if search.state_vectors else None
        self._position_of = PositionReader(search.position_key)
        self._catalog = IndexCatalog(self._tiers, IndexSettings(
            state_dim=search.vector_dim, cell_size=search.cell_size, exact_limit=search.exact_limit,
            max_agents=search.index_agents, memory_budget=search.index_memory_mb << 20, snapshot_dir=os.path.join(config.data_dir, "indices", config.key_prefix)))
        self._searcher = Searcher(self._catalog, self._tiers.fetch)
        self._text_embedder = TextEmbedder(self._tiers, search)
        self._unmaintained: dict[str, int] = defaultdict(int)
        self._closed = False
        self._tiers.scripts.on_reload = self._check_incarnation  # Redis lost the scripts: it restarted
        server = self._connection.embedded_server
        if server is not None and server.unclean and config.key_prefix not in server.reconciled:
            try:
                self._reconcile_after_crash(server)
            except BaseException:
                self.close()
                raise

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
            engine = ltm_engine if ltm_engine is not None else make_engine(ltm_cfg.url, db_path)
        except (TierUnavailableError, ImportError) as exc:
            raise MemoryConfigException(f"cannot open the long-term store: {exc}") from exc
        server = self._connection.embedded_server
        return open_tiers(
            self._connection.client, engine, TierSettings(
                key_prefix=config.key_prefix, change_log_limit=config.change_log_limit,
                compression_level=config.im_config.compression_level, dictionary_size=ltm_cfg.dictionary_size,
                dictionary_samples=ltm_cfg.dictionary_samples),
            owned_engine=ltm_engine is None, redis_where=self._connection.describe(),
            persist_redis=server.save if server is not None else None, adopt=adopt)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``"redis"`` or ``"embedded"``."""
        return self._connection.mode

    def close(self) -> None:
        """Release Redis, the SQL engine and (embedded mode) snapshot STM and IM to disk."""
        if self._closed:
            return
        self._closed = True
        self._text_embedder.close()
        self._cache.clear()
        self._tiers.ltm.close()
        self._connection.close()

    def __enter__(self) -> "AgentMemoryAPI":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryAPIException("this AgentMemoryAPI is closed")

    # -- writes ----------------------------------------------------------------------------------
    def store_agent_state(
        self, agent_id: str, state_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        """Store a state. ``embedding``: your own vector for it (``search_config.vector_dim``
        values) instead of the state encoder's."""
        return self._store_one(agent_id, state_data, step_number, priority, "state", embedding)

    def store_agent_interaction(
        self, agent_id: str, interaction_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        return self._store_one(agent_id, interaction_data, step_number, priority, "interaction", embedding)

    def store_agent_action(
        self, agent_id: str, action_data: Mapping, step_number: int, priority: float = 1.0, embedding: Any = None
    ) -> str:
        return self._store_one(agent_id, action_data, step_number, priority, "action", embedding)

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
        if isinstance(records, (Mapping, str, bytes)) or not isinstance(records, Iterable):
            what = "one record (pass it in a list)" if isinstance(records, Mapping) else type(records).__name__
            raise InvalidInputError(f"store_many takes an iterable of records (dicts), got {what}")
        key = None if idempotency_key is None else validation.idempotency_key(idempotency_key)
        now = self._clock()
        checked: list[_Checked] = []
        for position, item in enumerate(records):
            validation.batch_record(position, item)
            try:
                checked.append(
                    self._check(
                        item["agent_id"],
                        item["data"],
                        item["step_number"],
                        item.get("priority", 1.0),
                        item.get("memory_type", "state"),
                        item.get("embedding"),
                        None if key is None else (key, position),
                    )
                )
            except InvalidInputError as exc:
                raise InvalidInputError(f"record {position}: {exc}") from None
        if not checked:
            return []
        by_agent: dict[str, list[_Checked]] = defaultdict(list)
        for item in checked:
            by_agent[item[1]].append(item)
        ids = [item[0] for item in checked]
        try:
            self._write(by_agent, now, idempotent=key is not None)
        except StoreIncompleteError as exc:
            raise StoreIncompleteError(str(exc), exc.landed, exc.not_landed, exc.unknown, ids) from exc
        return ids

    def _store_one(
        self, agent_id: str, data: Mapping, step: int, priority: float, memory_type: str, embedding: Any
    ) -> str:
        self._check_open()
        checked = self._check(agent_id, data, step, priority, memory_type, embedding)
        try:
            self._write({checked[1]: [checked]}, self._clock())
        except StoreIncompleteError as exc:
            if exc.unknown:
                raise OutcomeUnknownError("stm", f"the store of {checked[0]} may or may not have happened: {exc}") from exc
            raise MemoryStoreException(str(exc)) from exc
        return checked[0]

    def _check(
        self, agent_id: Any, data: Any, step: Any, priority: Any, memory_type: Any, embedding: Any = None,
        keyed: tuple[str, int] | None = None,
    ) -> "_Checked":
        """Validate and serialize one memory and give it its id (``keyed``: the one that
        follows from an idempotency key and a position): everything that can fail. What cannot
        (the state vector, the place) is derived while the writes stream (see _write)."""
        agent_id = validation.agent_id(agent_id)
        step = validation.step(step)
        importance = validation.importance(priority)
        memory_type = validation.memory_type(memory_type)
        blob = validation.contents(data, self.config.max_payload_bytes)
        own = None
        if embedding is not None:
            vector = unit_vector(embedding, self.config.search_config.vector_dim, "embedding")
            own = Embeddings(full_vector=vector.tobytes())
        memory_id = self._ids.new(agent_id, step) if keyed is None else self._ids.keyed(agent_id, step, *keyed)
        return memory_id, agent_id, step, memory_type, importance, blob, data, own

    def _state_vector(self, data: Any) -> Embeddings:
        if self._state_encoder is None or not isinstance(data, Mapping):
            return NO_EMBEDDINGS
        try:
            return Embeddings(full_vector=self._state_encoder.encode(data).tobytes())
        except (TypeError, ValueError, OverflowError) as exc:  # contents the encoder cannot read: no vector
            log.debug("no state vector: %s", exc)
            return NO_EMBEDDINGS

    def _write(self, by_agent: Mapping[str, list["_Checked"]], now: float, idempotent: bool = False) -> None:
        """One round trip: one put script per agent, streamed when there are several.

        Records are built inside the stream, state vectors and places included, so that work
        overlaps with Redis running the puts already sent; everything that could fail was checked
        before, and a stream that is sent again builds the same records. ``idempotent``: skip
        records some tier already holds (keyed ids, see store_many).
        """
        tiers = self._tiers
        state_vector, position_of = self._state_vector, self._position_of

        def records(items: list[_Checked]) -> Callable[[], list[MemoryRecord]]:
            return lambda: [
                MemoryRecord(memory_id, agent, step, memory_type, now, importance, blob,
                             state_vector(data) if own is None else own, 0, None, None, "stm", 0, position_of(data))
                for memory_id, agent, step, memory_type, importance, blob, data, own in items]

        if idempotent:
            by_agent = self._not_in_ltm(by_agent)
        embed_text = self.config.search_config.text_embedding != "off"
        tiers.store([(agent_id, records(items)) for agent_id, items in by_agent.items()], now,
                    embed_text=embed_text, skip_stored=idempotent)
        self._text_embedder.stored(by_agent)
        self._after_write(by_agent)

    def _not_in_ltm(self, by_agent: Mapping[str, list["_Checked"]]) -> dict[str, list["_Checked"]]:
        """The records of a keyed store that LTM does not hold already (stored by an earlier call
        with the same key, and moved there since); Redis's copies are skipped by the put itself."""
        tiers, kept = self._tiers, {}
        try:
            for agent_id, items in by_agent.items():
                held = tiers.ltm.held(agent_id, [item[0] for item in items]) if tiers.ltm_bounds(agent_id) else set()
                kept[agent_id] = [item for item in items if item[0] not in held]
        except TierUnavailableError as exc:
            raise StoreIncompleteError(f"could not check LTM for records stored before: {exc}", frozenset(),
                                       frozenset(by_agent), frozenset(), []) from exc
        return {agent_id: items for agent_id, items in kept.items() if items}

    def _after_write(self, by_agent: Mapping[str, list[Any]]) -> None:
        """Maintain each agent after every ``cleanup_interval`` of its insertions."""
        due = []
        for agent_id, records in by_agent.items():
            self._unmaintained[agent_id] += len(records)
            if self._unmaintained[agent_id] >= self.config.cleanup_interval:
                due.append(agent_id)
        if not due:
            return
        for agent_id in due:
            del self._unmaintained[agent_id]
        try:
            self._maintainer.run(due, only_if_needed=True)
        except MemoryMaintenanceException as exc:
            # The write itself succeeded; every memory is still findable. Say so loudly.
            log.warning("automatic maintenance failed, will retry at the next interval: %s", exc)

    # -- point operations --------------------------------------------------------------------------
    def get_memory(self, agent_id: str, memory_id: str) -> dict[str, Any] | None:
        """One memory by id from whichever tier holds it, or None.

        This is the focused read: it counts toward ``retrieval_count`` (queries do not), refreshes
        the memory's age for retention, and enough of them bring an LTM memory back to IM.
        """
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        memory_id = validation.memory_id(memory_id)
        now = self._clock()
        tiers = self._tiers
        try:
            for attempt in range(_SETTLE_ATTEMPTS):
                found, promoting = tiers.focused(agent_id, memory_id, now)  # the counter first: see _settled
                if found is not None:
                    return found.to_dict()
                rows = tiers.ltm.get_many(agent_id, [memory_id])
                if rows:
                    return tiers.meta.count_ltm_read(agent_id, rows[0], now).to_dict()
                if self._settled(agent_id, promoting):
                    return None
                time.sleep(0.001 * 2**attempt)  # a promotion may have moved it past both reads
            return None
        except (TierUnavailableError, OutcomeUnknownError) as exc:
            raise MemoryRetrievalException(f"could not read memory {memory_id}: {exc}") from exc

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

    def clear_agent_memory(self, agent_id: str) -> int:
        """Delete every memory of an agent from every tier; returns how many there were.

        Holds the agent's maintenance lease meanwhile, so no maintainer in another process can
        write a memory back into LTM halfway through.
        """
        self._check_open()
        agent_id = validation.agent_id(agent_id)
        tiers = self._tiers
        try:
            with self._maintainer.holding(agent_id, wait=self.config.maintenance_lock_timeout):
                held = tiers.clear_agent(agent_id, time.time_ns())
        except (TierUnavailableError, MemoryMaintenanceException) as exc:
            raise MemoryStoreException(f"could not clear agent {agent_id}: {exc}") from exc
        self._unmaintained.pop(agent_id, None)
        return held

    # -- queries -------------------------------------------------------------------------------------
    def retrieve_by_time_range(
        self,
        agent_id: str,
        start_step: int,
        end_step: int,
        memory_type: str | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        """Memories with ``start_step <= step_number <= end_step``, in step order."""
        agent_id = validation.agent_id(agent_id)
        start = validation.step(start_step, "start_step")
        end = validation.step(end_step, "end_step")
        memory_type = validation.optional_memory_type(memory_type)
        limit = validation.limit(limit)
        if start > end:
            raise InvalidInputError(f"start_step {start} is after end_step {end}")
        query = {"by": "step", "lo": start, "hi": end, "memory_type": memory_type, "reverse": False, "limit": limit}
        return self._cached(agent_id, ("range", tuple(query.items())), lambda: self._range(agent_id, query))

    def retrieve_recent(self, agent_id: str, count: int = 5, memory_type: str | None = None) -> QueryResult:
        """The ``count`` newest memories (highest step first)."""
        agent_id = validation.agent_id(agent_id)
        memory_type = validation.optional_memory_type(memory_type)
        count = validation.limit(count, "count")
        query = {"by": "step", "lo": None, "hi": None, "memory_type": memory_type, "reverse": True, "limit": count}
        return self._cached(agent_id, ("range", tuple(query.items())), lambda: self._range(agent_id, query))

    def retrieve_most_important(self, agent_id: str, k: int = 10, memory_type: str | None = None) -> QueryResult:
        """The ``k`` memories with the highest importance score (importance index)."""
        agent_id = validation.agent_id(agent_id)
        memory_type = validation.optional_memory_type(memory_type)
        k = validation.limit(k, "k")
        query = {"by": "importance", "lo": None, "hi": None, "memory_type": memory_type, "reverse": True, "limit": k}
        return self._cached(agent_id, ("range", tuple(query.items())), lambda: self._range(agent_id, query))

    def retrieve_by_attributes(
        self,
        agent_id: str,
        attributes: Mapping[str, Any],
        memory_type: str | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        """Memories whose contents match every ``dot.path: value`` exactly, in step order."""
        agent_id = validation.agent_id(agent_id)
        wanted = validation.attributes(attributes, self.config.max_payload_bytes)
        memory_type = validation.optional_memory_type(memory_type)
        limit = validation.limit(limit)
        try:
            params = tuple(sorted((path, _freeze(value)) for path, value in wanted.items()))
        except TypeError:
            params = None  # unhashable expected values: answer uncached
        compute = lambda: self._attribute_scan(agent_id, wanted, memory_type, limit)  # noqa: E731
        if params is None:
            answer = self._until_settled(compute)
            return self._answer(answer.records, answer.failed)
        return self._cached(agent_id, ("attributes", params, memory_type, limit), compute)

    def get_memory_space(self, agent_id: str) -> MemorySpace:
        return MemorySpace(self, validation.agent_id(agent_id))

    def _cached(self, agent_id: str, params: tuple, compute: Callable[[], "_Answer"]) -> QueryResult:
        """Serve a kept answer if the agent's stamp (incarnation and version) has not moved
        since, else compute and keep.

        A first-time query reads the stamp in the same round trip as its data, so a miss costs
        no extra round trip; checking a kept answer costs one. A stamp of another incarnation
        (Redis lost the agent's keys) never matches, however its version compares.
        """
        self._check_open()
        key = (agent_id, params)
        kept = self._cache.get(key)
        if kept is not MISS:
            stamp, records, extras = kept
            try:
                current = self._tiers.meta.stamp(agent_id)
            except TierUnavailableError as exc:
                if not self.config.degrade_reads:
                    raise MemoryRetrievalException(f"Redis did not answer: {exc}") from exc
                current = None
            if current == stamp:
                self._cache.hit()
                return self._answer(records, (), extras)
            self._cache.miss()
        answer = self._until_settled(compute)
        if answer.stamp is not None and not answer.failed and answer.settled:
            self._cache.put(key, (answer.stamp, tuple(answer.records), answer.extras))
        return self._answer(answer.records, answer.failed, answer.extras)

    @staticmethod
    def _until_settled(compute: Callable[[], "_Answer"]) -> "_Answer":
        """Compute again while a promotion overlapped the read of LTM (see _settled)."""
        for attempt in range(_SETTLE_ATTEMPTS):
            answer = compute()
            if answer.settled:
                return answer
            time.sleep(0.001 * 2**attempt)
        # the counter stayed odd: a promotion that died mid-way, whose memories sit in two tiers
        # (readers find them) until maintenance heals it
        log.warning("a promotion kept overlapping this read; answering with the last attempt")
        return answer

    @staticmethod
    def _answer(
        records: Sequence[MemoryRecord], failed: Sequence[str], extras: Sequence[Mapping[str, Any]] | None = None
    ) -> QueryResult:
        """The public form of an answer; ``extras`` (scores, distances) go into each dict."""
        if failed:
            log.warning("degraded read: tiers %s did not answer; returning what the others hold", ", ".join(failed))
        if extras is None:
            return QueryResult((record.to_dict() for record in records), failed)
        return QueryResult(({**record.to_dict(), **extra} for record, extra in zip(records, extras)), failed)

    def _tier_failure(self, tier: str, exc: Exception, failed: list[str]) -> None:
        if not self.config.degrade_reads:
            raise MemoryRetrievalException(f"{tier} did not answer: {exc}") from exc
        failed.append(tier)

    def _redis_answers(self, agent_id: str, query: Mapping[str, Any], failed: list[str]) -> RedisRead:
        """STM and IM answers with the agent's stamp, promotion counter and LTM step bounds."""
        try:
            return self._tiers.read_redis(agent_id, query)
        except TierUnavailableError as exc:
            self._tier_failure("stm+im", exc, failed)
            return RedisRead([], (-1, 2**63), None, None)  # LTM bounds unknown: ask it

    def _settled(self, agent_id: str, promoting: int | None) -> bool:
        """After reading LTM: no promotion ran since the Redis tiers were read (seqlock check)."""
        if promoting is None:
            return True  # Redis did not answer: nothing to compare against
        return _unchanged(promoting, self._tiers.meta.promotions(agent_id))

    def _ltm_settled(self, agent_id: str, rows: list[MemoryRecord], redis: RedisRead) -> tuple[list[MemoryRecord], bool]:
        """A query's LTM rows with the focused reads maintenance has not flushed to SQL yet (when
        the read of Redis saw any), and whether they settled (see _settled): one round trip."""
        if redis.promoting is None:
            return rows, True  # Redis did not answer: nothing to compare against or add
        rows, promoting = self._tiers.settle_ltm_rows(agent_id, rows, redis)
        return rows, _unchanged(redis.promoting, promoting)

    def _range(self, agent_id: str, query: Mapping[str, Any]) -> "_Answer":
        failed: list[str] = []
        redis = self._redis_answers(agent_id, query, failed)
        answers, settled = redis.answers, True
        if _may_overlap(redis.bounds, query):
            try:
                rows, settled = self._ltm_settled(agent_id, self._tiers.ltm.range(agent_id, **query), redis)
                answers.append(rows)
            except TierUnavailableError as exc:
                self._tier_failure("ltm", exc, failed)
        key = by_step if query["by"] == "step" else by_importance
        merged = merge_tiers(answers, key, reverse=query["reverse"], limit=query["limit"])
        return _Answer(merged, failed, redis.stamp, settled)

    def _attribute_scan(
        self, agent_id: str, wanted: Mapping[str, Any], memory_type: str | None, limit: int | None
    ) -> "_Answer":
        failed: list[str] = []
        matches = matcher(wanted)
        query = {"by": "step", "lo": None, "hi": None, "memory_type": memory_type, "reverse": False, "limit": None}
        redis = self._redis_answers(agent_id, query, failed)
        answers, settled = [[r for r in answer if matches(r.contents)] for answer in redis.answers], True
        if redis.bounds is not None:
            try:
                found = []
                for chunk in self._tiers.ltm.iter_agent(agent_id, memory_type):
                    found += [r for r in chunk if matches(r.contents)]
                found, settled = self._ltm_settled(agent_id, found, redis)
                answers.append(found)
            except TierUnavailableError as exc:
                self._tier_failure("ltm", exc, failed)
        return _Answer(merge_tiers(answers, by_step, limit=limit), failed, redis.stamp, settled)

    # -- maintenance and statistics -----------------------------------------------------------------
    def force_memory_maintenance(self, agent_id: str | None = None) -> MaintenanceReport:
        """Run maintenance now for one agent or all; returns what moved where."""
        self._check_open()
        self._check_incarnation()
        if agent_id is not None:
            agents = [validation.agent_id(agent_id)]
            report = self._maintainer.run(agents)
        else:
            agents = self.list_agents()
            report = self._maintainer.run(agents, only_if_needed=True)
        for agent in agents:
            self._unmaintained.pop(agent, None)
        return report

    def list_agents(self) -> list[str]:
        """Every agent holding memories under this key prefix, in Redis or in LTM.

        An admin path: it SCANs Redis for the agents' meta keys (never KEYS), so every process
        sees the same list without any registry to keep in step.
        """
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


def _unchanged(promoting: int, now: int) -> bool:
    """The promotion counter read before LTM (even: none under way) is the same after it."""
    return promoting % 2 == 0 and now == promoting


@dataclass
class _Answer:
    records: list[MemoryRecord]
    failed: list[str]  # tiers that did not answer (degraded reads only)
    stamp: Stamp | None  # the agent's stamp read with the data; None when Redis failed
    settled: bool = True  # False: a promotion ran while LTM was read, so a memory may be missing
    extras: tuple[Mapping[str, Any], ...] | None = None  # per record: similarity_score, distance


def _may_overlap(bounds: tuple[int, int] | None, query: Mapping[str, Any]) -> bool:
    if bounds is None:
        return False
    lo, hi = query["lo"], query["hi"]
    if query["by"] != "step":
        return True
    return (hi is None or bounds[0] <= hi) and (lo is None or bounds[1] >= lo)


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an expected attribute value (cache keys)."""
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    hash(value)
    return (type(value).__name__, value)
