"""Ranked retrieval: recency, importance and relevance, each min-max normalised over the memories
that pass the query's filters, weighted and summed.

The scheme of generative agents (Park et al. 2023: recency, importance and relevance, each
scaled to [0, 1], summed with weights) and of redis agent-memory-server (semantic similarity
with a recency boost) come by name. Recency decays per step: ``decay ** (newest step - step)``,
the newest memory among those that pass scoring 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiers.errors import InvalidInputError


@dataclass(frozen=True)
class RankBy:
    recency: float = 0.0
    importance: float = 0.0
    relevance: float = 0.0
    decay: float = 0.995  # recency lost per step, as a factor


PRESETS = {
    "generative_agents": RankBy(recency=0.5, importance=2.0, relevance=3.0),
    "agent_memory_server": RankBy(recency=0.2, relevance=0.8),
}


def rank_by(preset: Any, recency: Any, importance: Any, relevance: Any, decay: Any) -> RankBy:
    """The weights a caller asked for, checked: a preset by name, or weights of one's own."""
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise InvalidInputError(f"rank_by preset must be one of {', '.join(sorted(PRESETS))}, got {preset!r}")
        if any(w is not None for w in (recency, importance, relevance)):
            raise InvalidInputError("rank_by takes a preset or weights, not both")
        base = PRESETS[preset]
        return RankBy(base.recency, base.importance, base.relevance, _decay(decay))
    weights = [_weight(w, name) for w, name in ((recency, "recency"), (importance, "importance"),
                                                (relevance, "relevance"))]
    if not any(weights):
        raise InvalidInputError("rank_by needs a preset or at least one positive weight "
                                "(recency=, importance=, relevance=)")
    return RankBy(weights[0], weights[1], weights[2], _decay(decay))


def _weight(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"rank_by {name} weight must be a finite number >= 0, got {value!r}")
    return float(value)


def _decay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InvalidInputError(f"rank_by decay must be a number in (0, 1], got {value!r}")
    return float(value)


def scores(rank: RankBy, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> list[np.ndarray]:
    """Each part's scores, for parts of (steps, importances, similarities or None; NaN where a
    memory has no vector): components normalised over all parts together."""
    if not parts or not any(len(steps) for steps, _, _ in parts):
        return [np.zeros(0) for _ in parts]
    newest = max(int(steps.max()) for steps, _, _ in parts if len(steps))
    log_decay = math.log(rank.decay)
    recency = [np.exp((newest - steps).astype(np.float64) * log_decay) for steps, _, _ in parts]
    importance = [values.astype(np.float64) for _, values, _ in parts]
    relevance = [np.full(len(steps), np.nan) if similar is None else similar.astype(np.float64)
                 for steps, _, similar in parts]
    total = [np.zeros(len(steps)) for steps, _, _ in parts]
    for weight, component in ((rank.recency, recency), (rank.importance, importance), (rank.relevance, relevance)):
        if weight:
            for out, scaled in zip(total, _min_max(component)):
                out += weight * scaled
    return total


def _min_max(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Each part scaled to [0, 1] by the minimum and maximum over all of them (NaN: 0; all
    equal: 0, the component then says nothing)."""
    known = [p[~np.isnan(p)] for p in parts]
    if not any(len(k) for k in known):
        return [np.zeros(len(p)) for p in parts]
    low = min(float(k.min()) for k in known if len(k))
    high = max(float(k.max()) for k in known if len(k))
    spread = high - low
    return [np.zeros(len(p)) if spread <= 0 else np.nan_to_num((p - low) / spread, nan=0.0) for p in parts]
