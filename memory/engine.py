"""AgentMemoryAPI: every write lands in STM; reads span STM, IM and LTM as one ordered answer."""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from redis.exceptions import RedisError

from embeddings.state import StateEncoder
from memory import validation
from memory.attributes import matcher
from memory.cache import MISS, ResultCache
from memory.config import MemoryConfig
from memory.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryMaintenanceException,
    MemoryNotFoundError,
    MemoryRetrievalException,
    MemoryStoreException,
    TierUnavailableError,
)
from memory.maintenance import Maintainer, MaintenanceReport
from memory.merge import by_importance, by_step, merge_tiers
from memory.derive import PositionReader, unit_vector
from memory.ids import MemoryIds
from memory.record import NO_EMBEDDINGS, Embeddings, MemoryRecord
from memory.search import Searcher
from memory.search_api import SearchMethods
from memory.space import MemorySpace
from memory.text_embedder import TextEmbedder
from indices.catalog import IndexCatalog, IndexSettings
from memory.statistics import gather
from memory.tierset import NO_LTM, RedisRead, TierSet
from tiers.codec import PayloadCodec
from tiers.connection import resolve
from tiers.keys import KeySchema
from tiers.ltm import SQLTier, make_engine
from tiers.redis_tier import RedisTier
from tiers.scripts import Scripts

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
    ):
        if config is None:
            config = MemoryConfig()
        if not isinstance(config, MemoryConfig):
            raise MemoryConfigException(f"config must be a MemoryConfig, got {type(config).__name__}")
        validation.engine_parts(redis_client, ltm_engine, clock)
        self.config = config
        self._clock = clock
        self._connection = resolve(data_dir=config.data_dir, url=config.redis_url_option(), client=redis_client)
        try:
            self._tiers = self._build_tiers(config, ltm_engine)
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
            max_agents=search.index_agents, snapshot_dir=os.path.join(config.data_dir, "indices", config.key_prefix)))
        self._searcher = Searcher(self._catalog, self._fetch_uncounted)
        self._text_embedder = TextEmbedder(self._tiers, search)
        self._unmaintained: dict[str, int] = defaultdict(int)
        self._closed = False

    def _build_tiers(self, config: MemoryConfig, ltm_engine: Any) -> TierSet:
        client = self._connection.client
        keys = KeySchema(config.key_prefix)
        scripts = Scripts(client)
        try:
            scripts.load()
        except RedisError as exc:
            raise MemoryConfigException(f"Redis refused the tiermem scripts: {exc}") from exc
        ltm_cfg = config.ltm_config
        db_path = ltm_cfg.db_path or os.path.join(config.data_dir, "ltm.sqlite")
        try:
            engine = ltm_engine if ltm_engine is not None else make_engine(ltm_cfg.url, db_path)
            ltm = SQLTier(engine, namespace=config.key_prefix, owned=ltm_engine is None)
        except (TierUnavailableError, ImportError) as exc:
            raise MemoryConfigException(f"cannot open the long-term store: {exc}") from exc
        codec = PayloadCodec(
            level=config.im_config.compression_level,
            dictionary_size=ltm_cfg.dictionary_size,
            dictionary_samples=ltm_cfg.dictionary_samples,
            load_dictionary=ltm.load_dictionary,
            save_dictionary=ltm.save_dictionary,
            latest_dictionary=ltm.latest_dictionary,
        )
        ltm.codec = codec
        stm = RedisTier("stm", client, keys, scripts, None)
        im = RedisTier("im", client, keys, scripts, codec)
        tiers = TierSet(client, keys, scripts, codec, stm, im, ltm)
        if self._connection.embedded_server is not None:
            tiers.persist_redis = self._connection.embedded_server.save
        return tiers

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

    def store_many(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Store many memories in one streamed round trip; all are validated before any is written.

        Each item: ``agent_id``, ``data``, ``step_number``, optional ``memory_type`` ("state"),
        ``priority`` (1.0) and ``embedding`` (a vector of your own). Returns the new ids in input order.
        """
        self._check_open()
        if isinstance(records, (Mapping, str, bytes)) or not isinstance(records, Iterable):
            what = "one record (pass it in a list)" if isinstance(records, Mapping) else type(records).__name__
            raise InvalidInputError(f"store_many takes an iterable of records (dicts), got {what}")
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
                    )
                )
            except InvalidInputError as exc:
                raise InvalidInputError(f"record {position}: {exc}") from None
        if not checked:
            return []
        by_agent: dict[str, list[_Checked]] = defaultdict(list)
        for item in checked:
            by_agent[item[1]].append(item)
        self._write(by_agent, now)
        return [item[0] for item in checked]

    def _store_one(
        self, agent_id: str, data: Mapping, step: int, priority: float, memory_type: str, embedding: Any
    ) -> str:
        self._check_open()
        checked = self._check(agent_id, data, step, priority, memory_type, embedding)
        self._write({checked[1]: [checked]}, self._clock())
        return checked[0]

    def _check(
        self, agent_id: Any, data: Any, step: Any, priority: Any, memory_type: Any, embedding: Any = None
    ) -> "_Checked":
        """Validate and serialize one memory and give it its id: everything that can fail. What
        cannot (the state vector, the place) is derived while the writes stream (see _write)."""
        agent_id = validation.agent_id(agent_id)
        step = validation.step(step)
        importance = validation.importance(priority)
        memory_type = validation.memory_type(memory_type)
        blob = validation.contents(data, self.config.max_payload_bytes)
        own = None
        if embedding is not None:
            vector = unit_vector(embedding, self.config.search_config.vector_dim, "embedding")
            own = Embeddings(full_vector=vector.tobytes())
        return self._ids.new(agent_id, step), agent_id, step, memory_type, importance, blob, data, own

    def _state_vector(self, data: Any) -> Embeddings:
        if self._state_encoder is None or not isinstance(data, Mapping):
            return NO_EMBEDDINGS
        try:
            return Embeddings(full_vector=self._state_encoder.encode(data).tobytes())
        except (TypeError, ValueError) as exc:  # contents the encoder cannot read: no vector
            log.debug("no state vector: %s", exc)
            return NO_EMBEDDINGS

    def _write(self, by_agent: Mapping[str, list["_Checked"]], now: float) -> None:
        """One round trip: one put script per agent, streamed when there are several.

        Records are built inside the stream, state vectors and places included, so that work
        overlaps with Redis running the puts already sent; everything that could fail was checked
        before, and a stream that is sent again builds the same records.
        """
        tiers = self._tiers
        state_vector, position_of = self._state_vector, self._position_of

        def records(items: list[_Checked]) -> list[MemoryRecord]:
            return [MemoryRecord(memory_id, agent, step, memory_type, now, importance, blob,
                                 state_vector(data) if own is None else own, 0, None, None, "stm", 0, position_of(data))
                    for memory_id, agent, step, memory_type, importance, blob, data, own in items]

        embed_text = self.config.search_config.text_embedding != "off"
        try:
            if len(by_agent) == 1:
                ((agent_id, items),) = by_agent.items()
                tiers.stm.put_many(agent_id, records(items), now, embed_text=embed_text)
            else:
                tiers.scripts.stream(
                    lambda: (("put", *tiers.stm.put_call(agent_id, records(items), now, embed_text=embed_text))
                             for agent_id, items in by_agent.items())
                )
        except (RedisError, TierUnavailableError) as exc:
            raise MemoryStoreException(f"could not store memories in STM: {exc}") from exc
        self._text_embedder.stored(by_agent)
        self._after_write(by_agent)

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
                pipe = tiers.client.pipeline(transaction=False)
                pipe.hget(tiers.keys.meta(agent_id), "promoting")  # read before the tiers (a seqlock: see _settled)
                decoders = [tier.queue_get(pipe, agent_id, [memory_id], now) for tier in (tiers.stm, tiers.im)]
                promoting, *answers = tiers.scripts.execute(pipe)
                for decode, raw in zip(decoders, answers):
                    found = decode(raw)
                    if found:
                        return found[0].to_dict()
                rows = tiers.ltm.get_many(agent_id, [memory_id])
                if rows:
                    return tiers.count_ltm_read(agent_id, rows[0], now).to_dict()
                if self._settled(agent_id, int(promoting or 0)):
                    return None
                time.sleep(0.001 * 2**attempt)  # a promotion may have moved it past both reads
            return None
        except (RedisError, TierUnavailableError) as exc:
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
                tiers.note(agent_id, "upd", "ltm", [memory_id])  # logs the change, bumps the version
        except (RedisError, TierUnavailableError) as exc:
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
                held = tiers.stm.count(agent_id) + tiers.im.count(agent_id)
                held += tiers.ltm.clear(agent_id)
                pipe = tiers.client.pipeline(transaction=False)
                pipe.delete(*tiers.keys.all_agent_keys(agent_id))
                # a fresh version, never reused, so no cached answer from before the clear survives
                # and the change log's seq jumps, so every process's indices see they must rebuild
                fresh = time.time_ns()
                # lepoch: persisted LTM indices of the agent's past no longer apply
                pipe.hset(tiers.keys.meta(agent_id), mapping={
                    "version": fresh, "cseq": fresh // 1_000_000, "lepoch": fresh, "ltm_lo": NO_LTM, "ltm_hi": NO_LTM})
                tiers.redis(pipe.execute)
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
        """Serve a kept answer if the agent's version has not moved since, else compute and keep.

        A first-time query reads the version in the same round trip as its data, so a miss
        costs no extra round trip; checking a kept answer costs one.
        """
        self._check_open()
        key = (agent_id, params)
        kept = self._cache.get(key)
        if kept is not MISS:
            version, records, extras = kept
            try:
                current = self._tiers.version(agent_id)
            except TierUnavailableError as exc:
                if not self.config.degrade_reads:
                    raise MemoryRetrievalException(f"Redis did not answer: {exc}") from exc
                current = None
            if current == version:
                self._cache.hit()
                return self._answer(records, (), extras)
            self._cache.miss()
        answer = self._until_settled(compute)
        if answer.version is not None and not answer.failed and answer.settled:
            self._cache.put(key, (answer.version, tuple(answer.records), answer.extras))
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
        """STM and IM answers with the agent's version, promotion counter and LTM step bounds."""
        try:
            return self._tiers.read_redis(agent_id, query)
        except (RedisError, TierUnavailableError) as exc:
            self._tier_failure("stm+im", exc, failed)
            return RedisRead([], (-1, 2**63), None, None)  # LTM bounds unknown: ask it

    def _settled(self, agent_id: str, promoting: int | None) -> bool:
        """After reading LTM: no promotion ran since the Redis tiers were read (seqlock check)."""
        if promoting is None:
            return True  # Redis did not answer: nothing to compare against
        return _unchanged(promoting, self._tiers.promotions(agent_id))

    def _ltm_settled(self, agent_id: str, rows: list[MemoryRecord], redis: RedisRead) -> tuple[list[MemoryRecord], bool]:
        """A query's LTM rows with the focused reads maintenance has not flushed to SQL yet (when
        the read of Redis saw any), and whether they settled (see _settled): one round trip."""
        if redis.promoting is None:
            return rows, True  # Redis did not answer: nothing to compare against or add
        tiers = self._tiers
        if not (rows and redis.ltm_pending):
            return rows, _unchanged(redis.promoting, tiers.promotions(agent_id))
        pipe = tiers.client.pipeline(transaction=False)
        pipe.hget(tiers.keys.meta(agent_id), "promoting")
        add_reads = tiers.queue_ltm_reads(pipe, agent_id, [r.memory_id for r in rows])
        promoting, *reads = tiers.redis(pipe.execute)
        return add_reads(rows, reads), _unchanged(redis.promoting, int(promoting or 0))

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
        return _Answer(merged, failed, redis.version, settled)

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
        return _Answer(merge_tiers(answers, by_step, limit=limit), failed, redis.version, settled)

    # -- maintenance and statistics -----------------------------------------------------------------
    def force_memory_maintenance(self, agent_id: str | None = None) -> MaintenanceReport:
        """Run maintenance now for one agent or all; returns what moved where."""
        self._check_open()
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
        tiers = self._tiers
        try:
            in_redis = tiers.redis(lambda: tiers.keys.scan_agents(tiers.client))
            pipe = tiers.client.pipeline(transaction=False)
            for agent in in_redis:
                pipe.hlen(tiers.stm.tier_keys(agent).data)
                pipe.hlen(tiers.im.tier_keys(agent).data)
            counts = tiers.redis(pipe.execute) if in_redis else []
            ltm_agents = tiers.ltm.agents()
        except TierUnavailableError as exc:
            raise MemoryRetrievalException(f"could not list agents: {exc}") from exc
        holding = {agent for i, agent in enumerate(in_redis) if counts[2 * i] or counts[2 * i + 1]}
        return sorted(holding | set(ltm_agents))

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
                "cache": cache, "cache_hit_rate": cache["hit_rate"]}

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
    version: int | None  # the agent's version read with the data; None when Redis failed
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
