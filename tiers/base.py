"""The contract every tier keeps: five batch primitives, everything else is built above them.

All tiers answer ``range`` in (index value, memory_id) order, ascending or descending, so the
cross-tier merge can join their answers without sorting.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from memory.record import MemoryRecord


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
