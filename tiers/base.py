"""The contract every tier keeps: a few batch primitives; everything else is built above them.

All tiers answer ``range`` in (index value, memory_id) order, ascending or descending, so the
cross-tier merge can join their answers without sorting. The engine, maintenance and the
in-process indices use a tier only through these methods plus what is particular to its kind
(Redis's pipelined reads and compare-and-set rewrites, SQL's read counts and change stamps);
tests/test_tier_conformance.py runs this contract on STM and IM (real Redis and the embedded
engine) and on LTM (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from tiers.record import Embeddings, MemoryRecord

# What an in-process index keeps of a memory (indices/tier_index.py):
# (memory_id, step, memory_type, importance, embeddings, position, contents as msgpack bytes)
DerivedRow = tuple[str, int, str, float, Embeddings, "tuple[float, ...] | None", bytes]


@runtime_checkable
class Tier(Protocol):
    name: str

    def put_many(self, agent_id: str, records: Sequence[MemoryRecord], now: float) -> Any:
        """Store records (an upsert by memory_id: storing the same record twice is harmless).

        A memory's step, type, timestamp and contents never change after it is created; only
        importance and access statistics are refreshed by a second put."""

    def get_many(self, agent_id: str, memory_ids: Sequence[str], now: float | None = None) -> list[MemoryRecord]:
        """The records among ``memory_ids`` that this tier holds, in no particular order."""

    def delete_many(self, agent_id: str, memory_ids: Sequence[str], drop_access: bool = False) -> int:
        """Remove records; returns how many were there."""

    def range(self, agent_id: str, *, by: str = "step", lo: float | None = None, hi: float | None = None,
              memory_type: str | None = None, reverse: bool = False, offset: int = 0,
              limit: int | None = None) -> list[MemoryRecord]:
        """Records by ``by`` ("step" or "importance") between ``lo`` and ``hi`` inclusive,
        optionally of one ``memory_type``, ``reverse``d, skipping ``offset``, at most ``limit``."""

    def count(self, agent_id: str) -> int:
        """How many records of the agent this tier holds."""

    def held(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """The ids among ``memory_ids`` this tier holds."""

    def derived(self, agent_id: str, memory_ids: Sequence[str] | None = None) -> Iterator[list[DerivedRow]]:
        """What the in-process indices need, without decoding payloads, in chunks: the rows of
        the ids given (those still here), or of every memory of the agent."""


@runtime_checkable
class FastTier(Tier, Protocol):
    """A tier in Redis (STM, IM: tiers/redis_tier.py): what the tier set and maintenance use
    beyond the shared contract. Its reads can join a pipeline; its writes are script calls."""

    codec: Any
    retention_rate: str  # this engine's rate for an agent's retention keys (tiers/lua/lib.lua), as sent

    def put_many(self, agent_id: str, records: Sequence[MemoryRecord], now: float, *, embed_text: bool = False,
                 leaving: str = "", skip_stored: bool = False) -> int | None:
        """``embed_text``: queue the records for the text embedder; ``leaving``: the tier they
        move from (their ids are noted as moves); ``skip_stored``: leave ids some tier holds."""

    def get_many(self, agent_id: str, memory_ids: Sequence[str], now: float | None = None,
                 keep_payload: bool = False) -> list[MemoryRecord]:
        """``keep_payload``: records keep their stored payload bytes (a move re-writes them as they are)."""

    def delete_many(self, agent_id: str, memory_ids: Sequence[str], drop_access: bool = False,
                    moved_to: str = "") -> int:
        """``moved_to``: the tier the memories went to (the change log says moved, not deleted)."""

    def tier_keys(self, agent_id: str) -> Any: ...

    def put_call(self, agent_id: str, records: Sequence[MemoryRecord], now: float, *, embed_text: bool = False,
                 leaving: str = "", skip_stored: bool = False) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the put script, for a caller that streams many."""

    def queue_get(self, pipe: Any, agent_id: str, memory_ids: Sequence[str], now: float | None,
                  keep_payload: bool = False) -> Any:
        """Add a read by id to a pipeline; returns what decodes its answer."""

    def range_call(self, agent_id: str, *, by: str = "step", lo: float | None = None, hi: float | None = None,
                   memory_type: str | None = None, reverse: bool = False, offset: int = 0,
                   limit: int | None = None) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the range script (see range), for a caller that pipelines it."""

    def decode(self, agent_id: str, raw: list[Any], keep_payload: bool = False) -> list[MemoryRecord]: ...

    def move_in(self, source: Any, agent_id: str, records: Sequence[MemoryRecord], now: float) -> int:
        """Store records here and delete them from ``source`` (the other Redis tier) atomically."""

    def set_embeddings(self, agent_id: str, rewritten: Sequence[tuple[str, bytes, bytes]]) -> list[str]: ...

    def demotion_candidates(self, agent_id: str, expired_before: float, limit: int, keep: int,
                            read_ids: Sequence[str]) -> tuple[list[str], int, list[Any], list[Any]]: ...

    def memory_ids(self, agent_id: str) -> list[str]: ...

    def stats(self, agent_id: str, sample: int = 64) -> dict[str, Any]: ...


@runtime_checkable
class LongTermTier(Tier, Protocol):
    """The SQL tier (LTM: tiers/ltm.py): what the engine, maintenance and the indices use beyond
    the shared contract: read counts flushed from Redis, change stamps, its own text queue."""

    codec: Any

    def put_many(self, agent_id: str, records: Sequence[MemoryRecord], now: float | None = None,
                 changed: int | None = None, text_pending: Collection[str] = ()) -> None:
        """``changed``: the change stamp the rows carry; ``text_pending``: ids still waiting for a text vector."""

    def get_many(self, agent_id: str, memory_ids: Sequence[str], now: float | None = None,
                 steps: Sequence[int] | None = None) -> list[MemoryRecord]:
        """``steps``: the memories' steps when the caller knows them (the primary key's prefix)."""

    def delete_many(self, agent_id: str, memory_ids: Sequence[str], drop_access: bool = False,
                    changed: int | None = None) -> int: ...

    def set_importance(self, agent_id: str, memory_id: str, importance: float, changed: int | None = None) -> bool: ...

    def set_embeddings(self, agent_id: str, embeddings: dict[str, Embeddings], changed: int | None = None) -> list[str]:
        ...

    def add_reads(self, agent_id: str, reads: dict[str, tuple[int, float | None, int | None]]) -> None: ...

    def reads_since_arrival(self, agent_id: str, memory_ids: Sequence[str]) -> dict[str, int]: ...

    def changed_since(self, agent_id: str, stamp: int) -> tuple[list[DerivedRow], list[str]]: ...

    def text_pending(self, agent_id: str, most: int | None = None, among: Sequence[str] | None = None) -> list[str]: ...

    def latest_stamp(self, agent_id: str) -> int: ...

    def step_bounds(self, agent_id: str) -> tuple[int, int] | None: ...

    def clear(self, agent_id: str) -> int: ...

    def agents(self) -> list[str]: ...

    def stats(self, agent_id: str | None) -> dict[str, Any]: ...

    def close(self) -> None: ...
