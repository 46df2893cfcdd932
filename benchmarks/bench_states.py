"""tiermem similar-states benchmark: do "similar states" mean similar values?

Run from the repository root (a Redis must answer at --redis-url; "" runs the embedded engine):

    .venv/bin/python benchmarks/bench_states.py                    # ~1 minute
    .venv/bin/python benchmarks/bench_states.py --sizes 100000     # adds latency at 100,000 states

A standalone script, not a test. One agent stores --states simulation states (a position on a
random walk, health, energy, an inventory of three counts, a goal and a mood), and maintenance
spreads them over STM, IM and LTM. The truth is the normalized-feature neighbours, by numpy over
every stored state: each number scaled by the spread (largest - smallest) seen at its path,
each categorical value one-hot, Euclidean distance. Beside tiermem's retrieve_similar_states, in
the same run, the state encoder's cosine (its vectors, exact over every state) against the same
truth. Figures:

  recall@10          held-out states (the generator's next states) as queries: an answer counts
                     when its true distance is at most the 10th smallest (ties tolerated)
  recall@10 by tier  query().in_tiers([tier]).similar_to(state) against the truth over that
                     tier's memories alone
  exact first        a stored state as the query: the first answer holds those very values
  scores             every similarity_score within [-1, 1]
  latency            p50 of retrieve_similar_states (result cache cleared) beside numpy over the
                     feature matrix, at --states and at each of --sizes
  store cost         store_many p50 per batch of 1,000 with the state encoder's vector
                     (search_config.state_vectors) and without: the budget is 1.5x
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.state import StateEncoder  # noqa: E402
from memory import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402

AGENT = "walker"
GOALS = ("gather", "explore", "build", "rest", "trade", "flee")
MOODS = ("calm", "curious", "tired", "afraid", "content")
TARGETS = {"recall": 0.9, "exact_first": 0.99, "store_ratio": 1.5}


def states(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A simulation's states: a random walk on a 200 x 200 world, slowly drifting vitals and
    inventory, a goal and a mood that change now and then."""
    out = []
    x, y, health, energy = 100.0, 100.0, 80.0, 0.7
    stock = {"wood": 5, "stone": 2, "food": 8}
    goal, mood = "explore", "calm"
    for _ in range(n):
        x = float(np.clip(x + rng.normal(0, 3), 0, 200))
        y = float(np.clip(y + rng.normal(0, 3), 0, 200))
        health = float(np.clip(health + rng.normal(0, 4), 0, 100))
        energy = float(np.clip(energy + rng.normal(0, 0.05), 0, 1))
        for item in stock:
            stock[item] = int(np.clip(stock[item] + rng.integers(-1, 2), 0, 30))
        if rng.random() < 0.05:
            goal = GOALS[rng.integers(len(GOALS))]
        if rng.random() < 0.05:
            mood = MOODS[rng.integers(len(MOODS))]
        out.append({"position": [round(x, 2), round(y, 2)], "health": round(health, 1), "energy": round(energy, 3),
                    "inventory": dict(stock), "goal": goal, "mood": mood})
    return out


def features(stored: list[dict[str, Any]], queries: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The normalized feature rows of the stored states and of the queries (the stored states'
    spreads scale both)."""
    def numbers(state: dict[str, Any]) -> list[float]:
        return [*state["position"], state["health"], state["energy"], *state["inventory"].values()]

    held = np.array([numbers(s) for s in stored])
    asked = np.array([numbers(s) for s in queries])
    low, spread = held.min(axis=0), np.ptp(held, axis=0)
    spread[spread == 0] = 1.0

    def one_hot(rows: list[dict[str, Any]]) -> np.ndarray:
        hot = np.zeros((len(rows), len(GOALS) + len(MOODS)))
        for i, state in enumerate(rows):
            hot[i, GOALS.index(state["goal"])] = 1.0
            hot[i, len(GOALS) + MOODS.index(state["mood"])] = 1.0
        return hot

    return (np.hstack([(held - low) / spread, one_hot(stored)]),
            np.hstack([(asked - low) / spread, one_hot(queries)]))


def recall(found: list[int], distances: np.ndarray, k: int = 10) -> float:
    """Share of the k answers whose true distance is within the k-th smallest (ties tolerated)."""
    if len(distances) <= k:
        return 1.0
    cut = np.partition(distances, k - 1)[k - 1] + 1e-9
    return sum(1 for row in found[:k] if distances[row] <= cut) / k


def make_api(args: argparse.Namespace, n: int, state_vectors: bool = False) -> AgentMemoryAPI:
    prefix = f"tmstates-{os.getpid()}-{secrets.token_hex(3)}"
    return AgentMemoryAPI(MemoryConfig(
        redis_url=args.redis_url, key_prefix=prefix, data_dir=tempfile.mkdtemp(prefix="tmstates-"),
        cleanup_interval=10**9, stm_config={"memory_limit": max(1, n // 10)},
        im_config={"memory_limit": max(1, 3 * n // 10)},
        search_config={"text_embedding": "off", "state_vectors": state_vectors}))


def store(api: AgentMemoryAPI, stored: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(stored), 1000):
        ids += api.store_many([{"agent_id": AGENT, "data": s, "step_number": start + i, "memory_type": "state"}
                               for i, s in enumerate(stored[start : start + 1000])])
    api.force_memory_maintenance(AGENT)
    return ids


def p50_ms(times: list[float]) -> float:
    return 1000 * float(np.median(times))


def quality(args: argparse.Namespace, out: list[str]) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    walk = states(args.states + args.probes, rng)
    stored, held_out = walk[: args.states], walk[args.states :]
    probes = [stored[i] for i in rng.choice(args.states, args.probes, replace=False)]
    held, asked = features(stored, held_out)
    encoder = StateEncoder(128)
    vectors = encoder.encode_many(stored)
    with make_api(args, args.states) as api:
        ids = store(api, stored)
        row_of = {memory_id: row for row, memory_id in enumerate(ids)}
        by_tier: dict[str, list[int]] = {}
        for tier in ("stm", "im", "ltm"):
            found = api.query(AGENT).in_tiers([tier]).all()
            by_tier[tier] = [row_of[m["memory_id"]] for m in found]
        tiermem, cosine, scores, times, brute = [], [], [], [], []
        for query, feature in zip(held_out, asked):
            distances = np.linalg.norm(held - feature, axis=1)
            api.clear_cache()
            started = time.perf_counter()
            answer = api.retrieve_similar_states(AGENT, query, k=10)
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            np.argpartition(np.linalg.norm(held - feature, axis=1), 10)[:10]
            brute.append(time.perf_counter() - started)
            tiermem.append(recall([row_of[m["memory_id"]] for m in answer], distances))
            scores += [m["similarity_score"] for m in answer]
            similar = vectors @ encoder.encode(query)
            cosine.append(recall(np.argsort(-similar)[:10].tolist(), distances))
        tier_recall = {}
        for tier, rows in by_tier.items():
            members = np.array(rows)
            found_recall = []
            for query, feature in zip(held_out[: args.probes // 2], asked):
                distances = np.full(len(stored), np.inf)
                distances[members] = np.linalg.norm(held[members] - feature, axis=1)
                answer = api.query(AGENT).in_tiers([tier]).similar_to(query).top(10)
                found_recall.append(_recall_in(answer, row_of, distances))
            tier_recall[tier] = float(np.mean(found_recall))
        first = 0
        for query in probes:
            answer = api.retrieve_similar_states(AGENT, query, k=1)
            first += bool(answer) and answer[0]["contents"] == query
            scores += [m["similarity_score"] for m in answer]
    figures = {"recall": float(np.mean(tiermem)), "cosine": float(np.mean(cosine)), "exact_first": first / len(probes),
               "low": min(scores), "high": max(scores)}
    sizes = {tier: len(rows) for tier, rows in by_tier.items()}
    out.append(f"states {args.states:,} (stm {sizes['stm']:,}, im {sizes['im']:,}, ltm {sizes['ltm']:,}); "
               f"{args.probes} held-out queries, {args.probes} stored-state probes")
    out.append("")
    out.append(f"{'quality':<58}{'tiermem':>10}{'baseline':>10}{'target':>10}  status")
    out.append(row("recall@10 vs normalized-feature neighbours", figures["recall"], figures["cosine"],
                   f">= {TARGETS['recall']}", figures["recall"] >= TARGETS["recall"]))
    for tier, value in tier_recall.items():
        out.append(row(f"  recall@10 within {tier} alone", value, None, f">= {TARGETS['recall']}",
                       value >= TARGETS["recall"]))
    out.append(row("stored state ranked first (share of probes)", figures["exact_first"], None,
                   f">= {TARGETS['exact_first']}", figures["exact_first"] >= TARGETS["exact_first"]))
    out.append(row("similarity_score range: lowest", figures["low"], None, ">= -1", figures["low"] >= -1))
    out.append(row("similarity_score range: highest", figures["high"], None, "<= 1", figures["high"] <= 1))
    out.append(f"  baseline: the state encoder's cosine, exact over the same {args.states:,} vectors")
    out.append("")
    out.append(f"{'latency (ms)':<58}{'tiermem':>10}{'numpy':>10}")
    out.append(f"{f'retrieve_similar_states k=10, {args.states:,} states, p50':<58}{p50_ms(times):>10.3f}"
               f"{p50_ms(brute):>10.3f}")
    return figures


def _recall_in(answer: Any, row_of: dict[str, int], distances: np.ndarray) -> float:
    finite = distances[np.isfinite(distances)]
    if len(finite) <= 10:
        return 1.0
    cut = np.partition(finite, 9)[9] + 1e-9
    return sum(1 for m in answer[:10] if distances[row_of[m["memory_id"]]] <= cut) / 10


def row(name: str, value: float, baseline: float | None, target: str, ok: bool) -> str:
    base = "" if baseline is None else f"{baseline:.3f}"
    return f"{name:<58}{value:>10.3f}{base:>10}{target:>10}  {'PASS' if ok else 'MISS'}"


def latency(args: argparse.Namespace, n: int, out: list[str]) -> None:
    rng = np.random.default_rng(args.seed + n)
    walk = states(n + 50, rng)
    stored, queries = walk[:n], walk[n:]
    held, asked = features(stored, queries)
    with make_api(args, n) as api:
        store(api, stored)
        api.retrieve_similar_states(AGENT, queries[0], k=10)
        times, brute = [], []
        for query, feature in zip(queries, asked):
            api.clear_cache()
            started = time.perf_counter()
            api.retrieve_similar_states(AGENT, query, k=10)
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            np.argpartition(np.linalg.norm(held - feature, axis=1), 10)[:10]
            brute.append(time.perf_counter() - started)
    out.append(f"{f'retrieve_similar_states k=10, {n:,} states, p50':<58}{p50_ms(times):>10.3f}{p50_ms(brute):>10.3f}")


def store_cost(args: argparse.Namespace, out: list[str]) -> float:
    stored = states(20_000, np.random.default_rng(args.seed))
    medians = {}
    for vectors in (False, True, False, True):  # interleaved: the machine's drift hits both
        with make_api(args, 10**9, state_vectors=vectors) as api:
            times = []
            for start in range(0, len(stored), 1000):
                batch = [{"agent_id": AGENT, "data": s, "step_number": start + i}
                         for i, s in enumerate(stored[start : start + 1000])]
                started = time.perf_counter()
                api.store_many(batch)
                times.append(time.perf_counter() - started)
            medians.setdefault(vectors, []).append(p50_ms(times))
    without, with_ = float(np.median(medians[False])), float(np.median(medians[True]))
    ratio = with_ / without
    out.append("")
    out.append(f"{'store cost (ms per batch of 1,000, p50)':<58}{'value':>10}{'':>10}{'target':>10}  status")
    out.append(f"{'  store_many without a state vector (the default)':<58}{without:>10.2f}")
    out.append(f"{'  store_many with the state encoder (state_vectors=True)':<58}{with_:>10.2f}")
    out.append(row("ratio with / without", ratio, None, f"<= {TARGETS['store_ratio']}",
                   ratio <= TARGETS["store_ratio"]))
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--states", type=int, default=5000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--sizes", default="", help="more store sizes to time (comma-separated)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out = ["", "tiermem similar-states benchmark", f"machine : nproc {os.cpu_count()}", ""]
    quality(args, out)
    for size in [int(s) for s in args.sizes.split(",") if s]:
        latency(args, size, out)
    store_cost(args, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
