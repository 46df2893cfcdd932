"""tiermem queries across agents: "which trades succeeded, in the whole simulation?"

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_across.py            # ~2 minutes

A standalone script, not a test. 100 agents each store 2,000 steps (every fourth an action
{"action": "trade", "outcome": ...}, 1% of them a success; the rest states), and one agent stores
the same 200,000 memories alone; maintenance runs with the default limits (STM 1,000, IM 10,000
per agent). Then, the result cache cleared before every call, interleaved for --rounds rounds:

  across       query_agents(all 100).of_type("action").where({"outcome": "success"}).all()
  one agent    the same query of the one agent holding the same 200,000 memories (the baseline:
               the same answer size, from one agent's indices)
  one by one   the query asked of each of the 100 agents in turn (what a caller did before)
  small        the query of one agent of 2,000 steps

Target: across within 2x of the one-agent query. Every answer is checked against the others.
Nothing is flushed: keys live under a unique prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402

AGENTS, STEPS = 100, 2000
TARGET = 2.0
WANTED = {"outcome": "success"}


def memories(agent: str, first_step: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for step in range(first_step, first_step + count):
        if step % 4 == 0:
            data: dict[str, Any] = {"action": "trade", "outcome": "success" if rng.random() < 0.01 else "failure"}
            kind = "action"
        else:
            data, kind = {"position": [rng.randint(0, 99), rng.randint(0, 99)], "health": rng.randint(0, 100)}, "state"
        out.append({"agent_id": agent, "step_number": step, "memory_type": kind, "data": data})
    return out


def p50_ms(call: Callable[[], Any], api: AgentMemoryAPI, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        api.clear_cache()
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20, help="calls per figure per round")
    args = parser.parse_args()
    prefix = f"tmacross-{os.getpid()}-{secrets.token_hex(3)}"
    rng = random.Random(3)

    def engine(name: str) -> AgentMemoryAPI:
        return AgentMemoryAPI(MemoryConfig(redis_url=args.redis_url, key_prefix=f"{prefix}-{name}",
                                           data_dir=tempfile.mkdtemp(prefix="tmacross-"), cleanup_interval=10**9,
                                           search_config={"text_embedding": "off"}))

    agents = [f"agent-{i}" for i in range(AGENTS)]
    with engine("many") as many, engine("one") as one:
        for agent in agents:
            many.store_many(memories(agent, 0, STEPS, rng))
        for start in range(0, AGENTS * STEPS, 5000):
            one.store_many(memories("everyone", start, 5000, rng))
        many.force_memory_maintenance()
        one.force_memory_maintenance()
        spread = {t: sum(many.get_memory_statistics(a)["tiers"][t]["count"] for a in agents) for t in ("stm", "im", "ltm")}
        alone = {t: c["count"] for t, c in one.get_memory_statistics("everyone")["tiers"].items()}

        def query(api: AgentMemoryAPI, agent: str) -> Any:
            return api.query(agent).of_type("action").where(WANTED).all()

        calls = {
            "across": (lambda: many.query_agents(agents).of_type("action").where(WANTED).all(), many),
            "one agent": (lambda: query(one, "everyone"), one),
            "one by one": (lambda: [m for agent in agents for m in query(many, agent)], many),
            "small": (lambda: query(many, agents[0]), many),
        }
        across = calls["across"][0]()
        by_agent = calls["one by one"][0]()
        assert sorted(m["memory_id"] for m in across) == sorted(m["memory_id"] for m in by_agent)
        truth = [m for m in many.query_agents(agents).of_type("action").all() if m["contents"]["outcome"] == "success"]
        assert len(across) == len(truth)
        for call, _ in calls.values():  # every engine's indices built before the clock
            call()
        figures: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, (call, api) in calls.items():
                figures[name].append(p50_ms(call, api, args.repeats))
        for api in (many, one):
            for agent in api.list_agents():
                api.clear_agent_memory(agent)
    client = redis.Redis.from_url(args.redis_url)  # and the bookkeeping a cleared agent leaves
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()

    median = {name: statistics.median(values) for name, values in figures.items()}
    ratio = median["across"] / median["one agent"]
    print()
    print("tiermem queries across agents")
    print(f"machine : nproc {os.cpu_count()}; {args.redis_url}; result cache cleared before every call")
    print(f"workload: {AGENTS} agents x {STEPS:,} steps (tiers summed: STM {spread['stm']:,}, IM {spread['im']:,}, "
          f"LTM {spread['ltm']:,}) and one agent of {AGENTS * STEPS:,} (STM {alone['stm']:,}, IM {alone['im']:,}, "
          f"LTM {alone['ltm']:,}); {len(across)} successful trades; {args.rounds} interleaved rounds of "
          f"{args.repeats} calls")
    print()
    labels = {"across": "query_agents(100 agents), p50",
              "one agent": "baseline: one agent holding the same memories, p50",
              "one by one": "the same query asked agent by agent (100 calls), p50",
              "small": "one agent of 2,000 steps, p50"}
    for name, label in labels.items():
        rounds = ", ".join(f"{v:.1f}" for v in figures[name])
        print(f"  {label:<58} {median[name]:8.2f} ms   (rounds: {rounds})")
    print(f"  across / one agent = {ratio:.2f} (target <= {TARGET:.1f})   {'PASS' if ratio <= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()
