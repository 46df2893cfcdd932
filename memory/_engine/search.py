"""Similarity, place and combined queries over the in-process indices of all three tiers.

A query narrows each tier's rows with its filters: attribute conditions and places pick rows
from their indices, step range, types and importance are masks; it ranks what passes (by
similarity, by distance, or by step), merges the tiers (a memory held by two tiers after an
interrupted move counts once, at the finer resolution), reads the winners' records and tests
the attribute conditions on their contents exactly (the attribute index answers a superset).
A condition the index cannot narrow by is tested the same way on more and more candidates
until ``limit`` memories pass or none are left, so a filtered query never comes back short
while enough memories match.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indices.catalog import AgentIndex, IndexCatalog
from indices.conditions import Condition, matcher
from indices.keywords import bm25
from indices.tier_index import Filter, TierIndex
from memory._engine import ranking
from memory._engine.ranking import RankBy
from tiers.bookkeeping import Stamp
from tiers.record import TIER_RANK, TIERS, MemoryRecord


@dataclass(frozen=True)
class Query:
    """Everything a search can combine. ``similar`` is (vector kind, unit vector)."""

    where: Filter = Filter()
    conditions: tuple[Condition, ...] = field(default=(), compare=False)  # on contents (indices/conditions.py)
    box: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # (low, high) corners
    center: tuple[float, float, float] | None = None
    radius: float | None = None  # with center: only memories this close; without: k nearest
    similar: tuple[str, np.ndarray] | None = field(default=None, compare=False)
    similar_key: bytes = b""  # the query vector's bytes, for the cache key
    state: tuple[tuple[str, Any], ...] | None = None  # a query state's leaves: rank by likeness to it
    spreads: Mapping[str, float] | None = field(default=None, compare=False)  # set while answering
    tiers: tuple[str, ...] = TIERS
    limit: int | None = None
    rank: RankBy | None = None  # weights: rank by recency, importance and relevance (ranking.py)
    keywords: tuple[str, ...] | None = None  # words of a text query: hybrid search (dense + BM25, fused)

    def key(self) -> tuple:
        state = None if self.state is None else tuple((path, _frozen(value)) for path, value in self.state)
        return (self.where, condition_key(self.conditions), self.box, self.center, self.radius, self.similar and self.similar[0],
                self.similar_key, state, self.tiers, self.limit, self.rank, self.keywords)


@dataclass
class Hit:
    tier: str
    memory_id: str
    rank: float  # smaller is better
    extras: dict[str, Any]
    step: int  # the memory's step, as the index knows it (LTM reads rows by it)
    agent_id: str = ""  # whose memory (set where several agents answer together)


@dataclass
class SearchAnswer:
    records: list[MemoryRecord]
    extras: list[dict[str, Any]]
    stamp: Stamp | None


class Searcher:
    def __init__(self, catalog: IndexCatalog, fetch_many: Callable[..., dict[str, tuple[list[MemoryRecord], Any]]]):
        self.catalog = catalog
        # {agent: ({tier: ids}, {tier: steps} or None, read the change log from this position or None)}
        #   -> {agent: (records found, uncounted; the change log's answer)}, in one round trip
        self._fetch_many = fetch_many

    def run(self, agent_id: str, query: Query) -> SearchAnswer:
        """Answer from the index as this process last knew it, reading the agent's change log
        in the same round trip as the winners' records: when the log held nothing new, the
        answer was current (one round trip saved); otherwise apply the changes and answer again."""
        return self.run_many([agent_id], query)

    def run_many(self, agent_ids: Sequence[str], query: Query) -> SearchAnswer:
        """The query over several agents' memories as one answer: each agent's part from its
        own indices, merged as one agent's tiers are, the winners' records and every agent's
        change log read in one round trip (the stamp, for the cache, with one agent only)."""
        indices = []
        for agent_id in dict.fromkeys(agent_ids):
            index = self.catalog.known(agent_id)
            if index.position < 0:
                index = self.catalog.current(agent_id)  # never caught up: build it first
            indices.append(index)
        with ExitStack() as held:
            for index in sorted(indices, key=lambda i: i.agent_id):  # one order: no two queries wait on each other
                held.enter_context(index.lock)
            while True:
                records, extras, fresh = self._answer(indices, query)
                if fresh:
                    return SearchAnswer(records, extras, indices[0].stamp if len(indices) == 1 else None)

    def _answer(self, indices: list[AgentIndex], query: Query) -> tuple[list[MemoryRecord], list[Any], bool]:
        wanted = query.limit
        if not query.conditions:
            found, fresh = self._records(indices, self._ranked(indices, query, wanted))
            return [r for r, _ in found], [e for _, e in found], fresh
        matches = matcher(query.conditions)
        budget = max(4 * (wanted or 0), 64)
        while True:
            hits = self._ranked(indices, query, None if wanted is None else budget)
            found, fresh = self._records(indices, hits)
            if not fresh:
                return [], [], False
            kept = [(r, e) for r, e in found if matches(r.contents)]
            if wanted is None or len(hits) < budget or len(kept) >= wanted:
                kept = kept if wanted is None else kept[:wanted]
                return [r for r, _ in kept], [e for _, e in kept], True
            budget *= 4

    def ltm_alone(self, agent_id: str, query: Query) -> list[MemoryRecord]:
        """What LTM alone answers, for a degraded read while Redis is away (unconfirmed by the
        change log, which lives in Redis)."""
        tier = self.catalog.ltm_alone(agent_id)
        hits = list(self._tier_hits(tier, _with_spreads(query, [tier]), None))
        found = {r.memory_id: r for r in self.catalog.t.ltm.get_many(
            agent_id, [h.memory_id for h in hits], steps=[h.step for h in hits])}
        matches = matcher(query.conditions)
        kept = [found[h.memory_id] for h in hits if h.memory_id in found and matches(found[h.memory_id].contents)]
        return kept if query.limit is None else kept[: query.limit]

    # -- ranking ------------------------------------------------------------------------------
    def _ranked(self, indices: list[AgentIndex], query: Query, limit: int | None) -> list[Hit]:
        if limit == 0:
            return []
        if query.keywords is not None:
            return self._hybrid(indices, query, limit)
        tiers = [(index.agent_id, index.tiers[tier]) for index in indices for tier in query.tiers
                 if len(index.tiers[tier])]  # an empty tier answers nothing (many agents' LTMs, early on)
        query = _with_spreads(query, [tier for index in indices for tier in index.tiers.values()])
        per_tier: list[Iterable[Hit]]
        if query.rank is not None:  # normalised over every agent's memories that pass
            per_tier = self._weighted_hits([tier for _, tier in tiers], query, limit)
        else:
            per_tier = [self._tier_hits(tier, query, limit) for _, tier in tiers]
        return _merged([_labelled(hits, agent_id) for (agent_id, _), hits in zip(tiers, per_tier)], limit)

    def _hybrid(self, indices: list[AgentIndex], query: Query, limit: int | None) -> list[Hit]:
        """Text search: the dense ranking (text vectors) and the BM25 ranking (keyword indices,
        with the statistics of all the agents' tiers together) fused by reciprocal rank, each
        taken to POOL deep (or four times the limit)."""
        pool = None if limit is None else max(POOL, 4 * limit)
        dense = self._ranked(indices, replace(query, keywords=None), pool)
        places = [(index, name) for index in indices for name in query.tiers]
        allowed = []
        for index, name in places:
            rows, mask, _ = self._passing_rows(index.tiers[name], query)
            allowed.append(rows if rows is not None else None if mask is None else np.flatnonzero(mask))
        found = bm25([self.catalog.keyword_index(index, name) for index, name in places], query.keywords or (), allowed)
        per_tier = []
        for (index, name), (rows, scores) in zip(places, found):
            tier = index.tiers[name]
            steps = tier.steps(rows).tolist()
            hits = [Hit(name, tier.ids[row], -score, {"keyword_score": score}, step, index.agent_id)
                    for row, score, step in zip(rows.tolist(), scores.tolist(), steps)]
            per_tier.append(sorted(hits, key=lambda h: (h.rank, h.memory_id)))  # the merge's order
        fused: dict[str, tuple[float, Hit]] = {}
        for ranking_ in (dense, _merged(per_tier, pool)):
            for position, hit in enumerate(ranking_):
                score, kept = fused.get(hit.memory_id, (0.0, hit))
                if kept is not hit:
                    kept.extras.update(hit.extras)
                fused[hit.memory_id] = (score + 1.0 / (RRF_K + position + 1), kept)
        ranked = sorted(fused.values(), key=lambda pair: (-pair[0], pair[1].memory_id))[:limit]
        vector = query.similar[1] if query.similar is not None else None
        out = []
        for score, hit in ranked:
            hit.rank = -score
            hit.extras["fused_score"] = score
            if "similarity_score" not in hit.extras and vector is not None:
                self._add_similarity(indices, hit, vector)
            out.append(hit)
        return out

    @staticmethod
    def _add_similarity(indices: list[AgentIndex], hit: Hit, vector: np.ndarray) -> None:
        """The text similarity of a memory the keyword ranking alone found."""
        index = next(i for i in indices if i.agent_id == hit.agent_id)
        tier = index.tiers[hit.tier]
        row = tier.rows.get(hit.memory_id)
        if tier.text is not None and row is not None and tier.text.dim == len(vector):
            score = tier.text.similarities(vector, np.array([row]))[0]
            if not np.isnan(score):
                hit.extras["similarity_score"] = float(score)

    def _weighted_hits(self, tiers: list[TierIndex], query: Query, limit: int | None) -> list[Iterable[Hit]]:
        """Each tier's hits by the weighted score of rank_by, normalised over every tier's rows
        that pass: exact (every such row is scored), best first."""
        rank: RankBy = query.rank  # type: ignore[assignment]
        found = []
        for tier in tiers:
            rows, mask, _ = self._passing_rows(tier, query)
            if rows is None:
                rows = tier.alive_rows() if mask is None else np.flatnonzero(mask)
            similar = None
            if query.state is not None:
                similar = 1.0 / (1.0 + np.sqrt(_state_distances(tier, query, rows)))
            elif query.similar is not None:
                kind, vector = query.similar
                vectors = tier.state if kind == "state" else tier.text
                similar = vectors.similarities(vector, rows) if vectors is not None and vectors.dim == len(vector) \
                    else np.full(len(rows), np.nan)
            found.append((tier, rows, tier.steps(rows), similar))
        scores = ranking.scores(rank, [(steps, tier.importances(rows), similar) for tier, rows, steps, similar in found])
        per_tier: list[Iterable[Hit]] = []
        for (tier, rows, steps, similar), score in zip(found, scores):
            if limit is not None and len(rows) > limit:
                cut = np.partition(-score, limit - 1)[limit - 1]
                kept = -score <= cut  # ties at the cut stay: their ids decide
                rows, steps, score = rows[kept], steps[kept], score[kept]
                similar = None if similar is None else similar[kept]
            order = np.lexsort((_ids(tier, rows), -score)) if len(rows) else rows
            hits = []
            for position in order[:limit].tolist():
                extras: dict[str, Any] = {"rank_score": float(score[position])}
                if similar is not None and not np.isnan(similar[position]):
                    extras["similarity_score"] = float(similar[position])
                memory_id: str = tier.ids[int(rows[position])]  # type: ignore[assignment]  # a passing row is alive
                hits.append(Hit(tier.tier, memory_id, -float(score[position]), extras, int(steps[position])))
            per_tier.append(hits)
        return per_tier

    def _tier_hits(self, tier: TierIndex, query: Query, limit: int | None) -> Iterator[Hit]:
        """The tier's hits, best first, made as the merge takes them (many agents' tiers merged
        for a few answers make few)."""
        rows, ranks, extras = self._ranked_rows(tier, query, limit)
        steps = tier.steps(rows).tolist()
        for row, rank, extra, step in zip(rows.tolist(), ranks, extras, steps):
            yield Hit(tier.tier, tier.ids[row], rank, extra, step)

    @staticmethod
    def _passing_rows(tier: TierIndex, query: Query) -> tuple[np.ndarray | None, np.ndarray | None, dict[int, float]]:
        """The tier's rows that pass the query's filters, as (rows, None, distances) when
        attribute conditions or a place (box or radius) picked rows from their indices (the
        other filters test only those; ``distances`` from the radius), else as (None, mask,
        {}) with the filters' mask over the tier (None: no filter at all)."""
        distances: dict[int, float] = {}
        rows: np.ndarray | None = None
        if query.box is not None:
            rows = tier.space.box(*query.box)
        if query.center is not None and query.radius is not None:
            near, found = tier.space.within(query.center, query.radius)
            if rows is not None:
                inside = np.isin(near, rows)
                near, found = near[inside], found[inside]
            rows, distances = near, dict(zip(near.tolist(), found.tolist()))
        if query.conditions:
            matching = tier.matching(query.conditions)
            if matching is not None:
                rows = matching if rows is None else rows[np.isin(rows, matching, assume_unique=True)]
        if rows is not None:
            return tier.passing(query.where, rows), None, distances
        return None, tier.mask(query.where), distances

    def _ranked_rows(self, tier: TierIndex, query: Query, limit: int | None) -> tuple[np.ndarray, list[float], list[dict]]:
        """The tier's rows that pass the query, best first: (rows, ranks, extras), a smaller
        rank being better (negated similarity, distance, or step)."""
        rows, mask, distances = self._passing_rows(tier, query)
        if query.state is not None:
            if rows is None:
                rows = tier.alive_rows() if mask is None else np.flatnonzero(mask)
            rows, found = _smallest_first(tier, rows, _state_distances(tier, query, rows), limit)
            return rows, found.tolist(), [_likeness(d, distances.get(row)) for row, d in zip(rows.tolist(), found.tolist())]
        if query.similar is not None:
            kind, vector = query.similar
            vectors = tier.state if kind == "state" else tier.text
            if vectors is None or vectors.dim != len(vector):
                return _NO_ROWS, [], []
            if rows is not None:
                rows, scores = vectors.search_rows(vector, len(rows) if limit is None else limit, rows)
            else:
                wanted = (len(vectors) if mask is None else int(mask.sum())) if limit is None else limit
                rows, scores = vectors.search(vector, wanted, mask)
            extras = [{"similarity_score": score, **({"distance": distances[row]} if row in distances else {})}
                      for row, score in zip(rows.tolist(), scores.tolist())]
            return rows, (-scores).tolist(), extras
        if query.center is not None and query.radius is None:
            if rows is not None:  # nearest within a box: the box's rows by distance
                found = np.linalg.norm(tier.space.points(rows) - np.asarray(query.center), axis=1)
            else:
                rows, found = tier.space.nearest(query.center, limit or len(tier), mask)
            rows, found = _smallest_first(tier, rows, found, limit)
            return rows, found.tolist(), [{"distance": d} for d in found.tolist()]
        if rows is None:
            rows = tier.alive_rows() if mask is None else np.flatnonzero(mask)
        if distances:  # a radius alone: nearest first
            rows, found = _smallest_first(tier, rows, np.array([distances[row] for row in rows.tolist()]), None)
            return rows, found.tolist(), [{"distance": d} for d in found.tolist()]
        rows, steps = _smallest_first(tier, rows, tier.steps(rows), limit)
        return rows, steps.astype(float).tolist(), [{} for _ in range(len(rows))]

    # -- records ------------------------------------------------------------------------------
    def _records(
        self, indices: list[AgentIndex], hits: Sequence[Hit]
    ) -> tuple[list[tuple[MemoryRecord, dict[str, Any]]], bool]:
        """The hits' records, and whether every agent's index was current (its change log,
        read in the same round trip as the Redis records, held nothing new)."""
        wanted: dict[str, tuple[dict[str, list[str]], dict[str, list[int]]]] = {
            index.agent_id: ({}, {}) for index in indices}
        for hit in hits:
            by_tier, steps = wanted[hit.agent_id]
            by_tier.setdefault(hit.tier, []).append(hit.memory_id)
            steps.setdefault(hit.tier, []).append(hit.step)
        answers = self._fetch_many({index.agent_id: (*wanted[index.agent_id], max(index.position, 0))
                                    for index in indices})
        current = [self.catalog.absorb(index, answers[index.agent_id][1]) == 0 for index in indices]
        if not all(current):
            return [], False
        found = {r.memory_id: r for fetched, _ in answers.values() for r in fetched}
        missing: dict[str, list[str]] = {}
        for hit in hits:
            if hit.memory_id not in found:
                missing.setdefault(hit.agent_id, []).append(hit.memory_id)
        if missing:  # moved between the log read and the LTM read: look in every tier
            again = self._fetch_many({agent_id: ({tier: ids for tier in TIERS}, None, None)
                                      for agent_id, ids in missing.items()})
            for fetched, _ in again.values():
                for record in fetched:
                    kept = found.get(record.memory_id)
                    if kept is None or TIER_RANK[record.tier] < TIER_RANK[kept.tier]:
                        found[record.memory_id] = record
        return [(found[hit.memory_id], hit.extras) for hit in hits if hit.memory_id in found], True


_NO_ROWS = np.empty(0, dtype=np.int64)
POOL = 300  # how deep each ranking of a hybrid text search is fused, at least
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)


def _merged(per_tier: Sequence[Iterable[Hit]], limit: int | None) -> list[Hit]:
    """Tiers' hits (each best first) as one list, at most ``limit``: equal ranks by id, then the
    finer copy of one memory first (an order tier placement never changes); a memory held by two
    tiers mid-move counts once, at the finer copy."""
    merged: list[Hit] = []
    seen: dict[str, Hit] = {}
    for hit in heapq.merge(*per_tier, key=lambda h: (h.rank, h.memory_id, TIER_RANK[h.tier])):
        kept = seen.get(hit.memory_id)
        if kept is not None:
            if TIER_RANK[hit.tier] < TIER_RANK[kept.tier]:  # the finer copy wins
                merged[merged.index(kept)] = hit
                seen[hit.memory_id] = hit
            continue
        seen[hit.memory_id] = hit
        merged.append(hit)
        if limit is not None and len(merged) >= limit:
            break
    return merged


def _with_spreads(query: Query, tiers: Sequence[TierIndex]) -> Query:
    """The query with the spread of each number its state names, over every tier of the agents
    asked (one scale for all, so distances compare, and a query of one tier ranks as the query
    of all tiers does)."""
    if query.state is None or query.spreads is not None:
        return query
    numbers = [path for path, value in query.state if type(value) is int or type(value) is float]
    seen: dict[str, tuple[float, float]] = {}
    for tier in tiers:
        for path, (low, high) in tier.attributes.extents(numbers).items():
            known_low, known_high = seen.get(path, (low, high))
            seen[path] = (min(low, known_low), max(high, known_high))
    return replace(query, spreads={path: high - low for path, (low, high) in seen.items()})


def _state_distances(tier: TierIndex, query: Query, rows: np.ndarray) -> np.ndarray:
    """Squared distances from the query state to ``rows``: over the whole tier and then picked
    when the rows are many (a pass over a column is cheaper than a gather per column)."""
    size = len(tier.ids)
    leaves, spreads = query.state or (), query.spreads or {}
    if 4 * len(rows) < size:
        return tier.attributes.distances(leaves, spreads, size, rows)
    return tier.attributes.distances(leaves, spreads, size, None)[rows]


def _likeness(squared: float, distance: float | None) -> dict[str, Any]:
    """A state answer's extras: its distance from the query state and a similarity in (0, 1]."""
    gap = squared ** 0.5
    extras: dict[str, Any] = {"similarity_score": 1.0 / (1.0 + gap), "state_distance": gap}
    if distance is not None:
        extras["distance"] = distance
    return extras


def _labelled(hits: Iterable[Hit], agent_id: str) -> Iterator[Hit]:
    for hit in hits:
        hit.agent_id = agent_id
        yield hit


def _ids(tier: TierIndex, rows: np.ndarray) -> np.ndarray:
    return np.array([tier.ids[row] for row in rows.tolist()], dtype=object)


def _smallest_first(tier: TierIndex, rows: np.ndarray, keys: np.ndarray, limit: int | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Rows by key (step or distance), equal keys by memory id (the tiers' merge order), at most
    ``limit``, so which of several equal memories come first, or make the cut, never depends on
    the order the index learnt them in. A copy of a memory in another tier has the same key, so
    the merge needs no more than ``limit`` from each tier."""
    if limit is not None and len(rows) > limit:
        cut = np.partition(keys, limit - 1)[limit - 1]
        kept = keys <= cut  # ties at the cut stay: their ids decide
        rows, keys = rows[kept], keys[kept]
    order = np.argsort(keys, kind="stable")
    rows, keys = rows[order], keys[order]
    if len(rows) > 1 and bool(np.any(keys[1:] == keys[:-1])):
        order = np.lexsort((_ids(tier, rows), keys))
        rows, keys = rows[order], keys[order]
    return rows[:limit], keys[:limit]


def condition_key(conditions: tuple[Condition, ...]) -> tuple[tuple[str, str, Any], ...]:
    """Attribute conditions as a hashable, ordered tuple (part of the cache key)."""
    return tuple(sorted(((c.path, c.op, _frozen(c.value)) for c in conditions), key=repr))


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a condition's value, its type kept (True and 1 hash alike)."""
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_frozen(v) for v in value))
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((k, _frozen(v)) for k, v in value.items())))
    return (type(value).__name__, value)

