"""The contract every tier keeps: a few batch primitives; everything else is built above them.

All tiers answer ``range`` in (index value, memory_id) order, ascending or descending, so the
cross-tier merge can join their answers without sorting. The engine, maintenance and the
in-process indices use a tier only through these methods plus what is particular to its kind
(Redis's pipelined reads and compare-and-set rewrites, SQL's read counts and change stamps);
tests/test_tier_conformance.py runs this contract on STM and IM (real Redis and the embedded
engine) and on LTM (SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from memory.record import Embeddings, MemoryRecord

# What an in-process index keeps of a memory (indices/tier_index.py):
# (memory_id, step, memory_type, importance, embeddings, position)
DerivedRow = tuple[str, int, str, float, Embeddings, "tuple[float, ...] | None"]


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

    def range(self, agent_id: str, **query: Any) -> list[MemoryRecord]:
        """Records by ``by`` ("step" or "importance") between ``lo`` and ``hi`` inclusive,
        optionally of one ``memory_type``, ``reverse``d, skipping ``offset``, at most ``limit``."""

    def count(self, agent_id: str) -> int:
        """How many records of the agent this tier holds."""

    def held(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        """The ids among ``memory_ids`` this tier holds."""

    def derived(self, agent_id: str, memory_ids: Sequence[str] | None = None) -> Iterator[list[DerivedRow]]:
        """What the in-process indices need, without decoding payloads, in chunks: the rows of
        the ids given (those still here), or of every memory of the agent."""
