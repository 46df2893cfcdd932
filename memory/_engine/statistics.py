"""Memory statistics: per-tier counts, bytes and compression, types, importance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from tiers.record import MEMORY_TYPES
from tiers.tierset import TierSet


class TierTotals:
    """Adds up the per-agent statistics of one tier."""

    def __init__(self) -> None:
        self.count = self.bytes = self.raw_sample = self.payload_sample = 0
        self.types: dict[str, int] = defaultdict(int)
        self.importance_sum = 0.0
        self.importance_min: float | None = None
        self.importance_max: float | None = None

    def add(self, stats: Mapping[str, Any]) -> None:
        self.count += stats["count"]
        self.bytes += stats["bytes"]
        self.raw_sample += stats["sample_raw_bytes"]
        self.payload_sample += stats["sample_payload_bytes"]
        for memory_type, n in stats["types"].items():
            self.types[memory_type] += n
        self.importance_sum += stats["importance_sum"]
        for name, pick in (("importance_min", min), ("importance_max", max)):
            value = stats[name]
            if value is not None:
                current = getattr(self, name)
                setattr(self, name, value if current is None else pick(current, value))

    def summary(self) -> dict[str, Any]:
        """Count, stored payload bytes, and raw/stored ratio (sampled in Redis, exact in LTM)."""
        return {
            "count": self.count,
            "bytes": self.bytes,
            "compression_ratio": self.raw_sample / self.payload_sample if self.payload_sample else 1.0,
        }


def gather(tiers: TierSet, agents: Sequence[str], agent_id: str | None) -> dict[str, Any]:
    """Statistics over ``agents`` (all of them when ``agent_id`` is None)."""
    totals = {"stm": TierTotals(), "im": TierTotals(), "ltm": TierTotals()}
    for agent in agents:
        totals["stm"].add(tiers.stm.stats(agent))
        totals["im"].add(tiers.im.stats(agent))
    ltm = tiers.ltm.stats(agent_id)
    totals["ltm"].add({**ltm, "bytes": ltm["payload_bytes"], "sample_raw_bytes": ltm["raw_bytes"],
                       "sample_payload_bytes": ltm["payload_bytes"]})
    distribution = {memory_type: 0 for memory_type in MEMORY_TYPES}
    importance_sum, count = 0.0, 0
    lows, highs = [], []
    for tier in totals.values():
        for memory_type, n in tier.types.items():
            distribution[memory_type] += n
        importance_sum += tier.importance_sum
        count += tier.count
        lows += [tier.importance_min] if tier.importance_min is not None else []
        highs += [tier.importance_max] if tier.importance_max is not None else []
    return {
        "total_memories": count,
        "tiers": {name: tier.summary() for name, tier in totals.items()},
        "memory_type_distribution": distribution,
        "importance": {
            "min": min(lows) if lows else None,
            "max": max(highs) if highs else None,
            "mean": importance_sum / count if count else None,
        },
    }
