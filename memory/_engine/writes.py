"""The store path: validate every memory of a call before writing any, then one streamed round
trip (one put script per agent) that builds the records while Redis runs the puts already sent;
every ``cleanup_interval`` insertions of an agent, maintenance (memory/_engine/scheduling.py)."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from embeddings.state import StateEncoder
from memory import validation
from memory._engine.derive import TIER_RESOLUTION, PositionReader, at_resolution, unit_vector
from memory._engine.ids import MemoryIds
from memory._engine.scheduling import MaintenanceScheduler
from memory._engine.text_embedder import TextEmbedder
from memory.config import MemoryConfig
from tiers.errors import (
    InvalidInputError,
    MemoryStoreException,
    OutcomeUnknownError,
    StoreIncompleteError,
    TierUnavailableError,
)
from tiers.failures import writing
from tiers.record import NO_EMBEDDINGS, Embeddings, MemoryRecord
from tiers.tierset import TierSet

log = logging.getLogger(__name__)

# A validated memory not yet written: (memory_id, agent_id, step, memory_type, importance,
# contents, the data as given, the caller's own vector as Embeddings or None)
Checked = tuple[str, str, int, str, float, bytes, Any, "Embeddings | None"]


class Writes:
    def __init__(
        self, tiers: TierSet, config: MemoryConfig, clock: Callable[[], float], state_encoder: StateEncoder | None,
        text_embedder: TextEmbedder, maintenance: MaintenanceScheduler, held: Callable[[str], bool] = lambda _: False,
    ):
        """``held``: whether this thread holds the agent's maintenance lease (AgentMemoryAPI.exclusive):
        the maintenance its stores make due waits for :meth:`maintain_if_due` at the block's end."""
        self._tiers = tiers
        self._held = held
        self._config = config
        self._clock = clock
        self._state_encoder = state_encoder
        self._position_of = PositionReader(config.search_config.position_key)
        self._text_embedder = text_embedder
        self._maintenance = maintenance
        self._ids = MemoryIds()
        self._unmaintained: dict[str, int] = defaultdict(int)

    def store_one(self, agent_id: Any, data: Any, step: Any, priority: Any, memory_type: str, embedding: Any) -> str:
        checked = self._check(agent_id, data, step, priority, memory_type, embedding)
        try:
            self._write({checked[1]: [checked]}, self._clock())
        except StoreIncompleteError as exc:
            if exc.unknown:
                raise OutcomeUnknownError("stm", f"the store of {checked[0]} may or may not have happened: {exc}") from exc
            raise MemoryStoreException(str(exc)) from exc
        return checked[0]

    def store_many(self, records: Any, idempotency_key: Any) -> list[str]:
        """See AgentMemoryAPI.store_many."""
        if isinstance(records, (Mapping, str, bytes)) or not isinstance(records, Iterable):
            what = "one record (pass it in a list)" if isinstance(records, Mapping) else type(records).__name__
            raise InvalidInputError(f"store_many takes an iterable of records (dicts), got {what}")
        key = None if idempotency_key is None else validation.idempotency_key(idempotency_key)
        now = self._clock()
        checked: list[Checked] = []
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
        by_agent: dict[str, list[Checked]] = defaultdict(list)
        for item in checked:
            by_agent[item[1]].append(item)
        ids = [item[0] for item in checked]
        try:
            self._write(by_agent, now, idempotent=key is not None)
        except StoreIncompleteError as exc:
            raise StoreIncompleteError(str(exc), exc.landed, exc.not_landed, exc.unknown, ids) from exc
        return ids

    def restore(self, records: Sequence[MemoryRecord], keep_tiers: bool) -> tuple[int, int]:
        """Store exported records as they were (ids, creation times, read counts), each in its
        own tier with ``keep_tiers``, else in STM; what they lack is derived as a store would (a
        place, a state vector, a text vector queued), and their vectors are cut to the resolution
        of the tier they enter. An id some tier holds is skipped. Returns (stored, skipped)."""
        tiers, now = self._tiers, self._clock()
        by_agent: dict[str, dict[str, MemoryRecord]] = defaultdict(dict)
        for record in records:
            by_agent[record.agent_id].setdefault(record.memory_id, record)
        stored, skipped, into_stm = 0, len(records), {}
        try:
            for agent_id, mine in by_agent.items():
                held = tiers.held(agent_id, list(mine))
                placed: dict[str, list[MemoryRecord]] = {"stm": [], "im": [], "ltm": []}
                for memory_id, record in mine.items():
                    if memory_id not in held:
                        tier = record.tier if keep_tiers else "stm"
                        placed[tier].append(self._completed(record, tier))
                writing("stm", functools.partial(tiers.registry.register, [agent_id]))
                self._restore_in(agent_id, placed, now)
                stored += sum(map(len, placed.values()))
                into_stm[agent_id] = placed["stm"]
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"the import stopped after storing {stored} memories: {exc}") from exc
        self._text_embedder.stored(by_agent)
        self._after_write(into_stm)
        return stored, skipped - stored

    def _completed(self, record: MemoryRecord, tier: str) -> MemoryRecord:
        contents = record.contents
        embeddings = record.embeddings
        if embeddings is NO_EMBEDDINGS:
            embeddings = self._state_vector(contents)
        elif embeddings.state is None and self._state_encoder is not None:
            embeddings = replace(embeddings, full_vector=self._state_vector(contents).full_vector)
        placed = record._replace(embeddings=embeddings, tier=tier, position=self._position_of(contents))
        return at_resolution(placed, TIER_RESOLUTION[tier])

    def _restore_in(self, agent_id: str, placed: Mapping[str, list[MemoryRecord]], now: float) -> None:
        """Write one agent's records: STM and IM by their put script (which skips what either
        holds, should a store have raced this), LTM rows with their change stamp."""
        tiers = self._tiers
        embed = self._config.search_config.text_embedding != "off"
        for tier in (tiers.stm, tiers.im):
            records = placed[tier.name]
            tiers.meta.restore_access(agent_id, records)
            for embed_text in (True, False):  # those without a text vector join the queue
                part = [r for r in records if (embed and r.embeddings.text is None) == embed_text]
                tier.put_many(agent_id, part, now, embed_text=embed_text, skip_stored=True)
        rows = placed["ltm"]
        if rows:
            waiting = {r.memory_id for r in rows if r.embeddings.text is None} if embed else set()
            tiers.ltm.put_many(agent_id, rows, changed=tiers.ltm_stamp(agent_id), text_pending=waiting)
            tiers.widen_ltm_bounds(agent_id, rows)
            tiers.meta.note(agent_id, "add", "ltm", [r.memory_id for r in rows])

    def forget(self, agent_id: str) -> None:
        """The agent was maintained or cleared: its count of insertions since starts again."""
        self._unmaintained.pop(agent_id, None)

    def _check(
        self, agent_id: Any, data: Any, step: Any, priority: Any, memory_type: Any, embedding: Any = None,
        keyed: tuple[str, int] | None = None,
    ) -> Checked:
        """Validate and serialize one memory and give it its id (``keyed``: the one that
        follows from an idempotency key and a position): everything that can fail. What cannot
        (the state vector, the place) is derived while the writes stream (see _write)."""
        agent_id = validation.agent_id(agent_id)
        step = validation.step(step)
        importance = validation.importance(priority)
        memory_type = validation.memory_type(memory_type)
        blob = validation.contents(data, self._config.max_payload_bytes)
        own = None
        if embedding is not None:
            vector = unit_vector(embedding, self._config.search_config.vector_dim, "embedding")
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

    def _write(self, by_agent: Mapping[str, list[Checked]], now: float, idempotent: bool = False) -> None:
        """One round trip: one put script per agent, streamed when there are several.

        Records are built inside the stream, state vectors and places included, so that work
        overlaps with Redis running the puts already sent; everything that could fail was checked
        before, and a stream that is sent again builds the same records. ``idempotent``: skip
        records some tier already holds (keyed ids, see store_many).
        """
        state_vector, position_of = self._state_vector, self._position_of

        def records(items: list[Checked]) -> Callable[[], list[MemoryRecord]]:
            return lambda: [
                MemoryRecord(memory_id, agent, step, memory_type, now, importance, blob,
                             state_vector(data) if own is None else own, 0, None, None, "stm", 0, position_of(data))
                for memory_id, agent, step, memory_type, importance, blob, data, own in items]

        if idempotent:
            by_agent = self._not_in_ltm(by_agent)
        embed_text = self._config.search_config.text_embedding != "off"
        self._tiers.store([(agent_id, records(items)) for agent_id, items in by_agent.items()], now,
                          embed_text=embed_text, skip_stored=idempotent)
        self._text_embedder.stored(by_agent)
        self._after_write(by_agent)

    def _not_in_ltm(self, by_agent: Mapping[str, list[Checked]]) -> dict[str, list[Checked]]:
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
        interval = self._config.cleanup_interval
        for agent_id, records in by_agent.items():
            self._unmaintained[agent_id] += len(records)
            if self._unmaintained[agent_id] >= interval and not self._held(agent_id):
                due.append(agent_id)
        self._schedule(due)

    def maintain_if_due(self, agent_id: str) -> None:
        """Schedule the agent's maintenance if its stores made it due (after an exclusive block)."""
        if self._unmaintained.get(agent_id, 0) >= self._config.cleanup_interval:
            self._schedule([agent_id])

    def _schedule(self, due: list[str]) -> None:
        if not due:
            return
        for agent_id in due:
            del self._unmaintained[agent_id]
        self._maintenance.schedule(due)
