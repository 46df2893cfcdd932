"""tiermem export and import: a round trip of a simulation's memories leaves every query answering the same.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_transfer.py --quick          # 10 agents x 2,000 steps, ~1 minute
    .venv/bin/python benchmarks/bench_transfer.py                  # 100 agents x 10,000 steps (1,000,000)

A standalone script, not a test. A source deployment (its own key prefix and SQLite LTM) stores
--agents x --steps simulation states (store_many, step-major batches of 1,000; the baseline for the
import's rate) and maintenance spreads them over the tiers (STM 10%, IM 40% of each agent's
steps). Every memory is exported with its tier to a JSON Lines file, imported into a second
deployment (another prefix, another LTM) with --tiers, and imported once more (everything is
skipped). Then both deployments answer the same queries and every answer is compared whole
(contents, metadata, tier): each agent's full time range, and --queries random ones of each
other kind: attributes, place, most important, similar states. Printed: memories/s for the
store, export, import and the repeated import, the file's size, and the comparison.
Nothing is flushed: both prefixes are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import delete_prefix  # noqa: E402
from memory import AgentMemoryAPI, MemoryConfig  # noqa: E402

GOALS = ("gather", "trade", "explore", "rest")


def state(rng: random.Random, step: int) -> dict[str, Any]:
    return {"position": [rng.randint(0, 99), rng.randint(0, 99)], "health": rng.randint(0, 100),
            "energy": round(rng.random(), 2), "goal": rng.choice(GOALS),
            "inventory": {"wood": rng.randint(0, 9), "stone": rng.randint(0, 9)}, "step": step}


def engine(args: argparse.Namespace, prefix: str, data_dir: str) -> AgentMemoryAPI:
    return AgentMemoryAPI(MemoryConfig(
        redis_url=args.redis_url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=10**9,
        stm_config={"memory_limit": max(1, args.steps // 10)}, im_config={"memory_limit": max(1, args.steps * 4 // 10)}))


def answers(api: AgentMemoryAPI, agents: list[str], args: argparse.Namespace) -> list[str]:
    """The same queries on either deployment, each answer in a comparable form."""
    rng = random.Random(args.seed)
    out = [repr(list(api.retrieve_by_time_range(agent, 0, args.steps))) for agent in agents]
    for _ in range(args.queries):
        agent = rng.choice(agents)
        wanted = {"goal": rng.choice(GOALS), "inventory.wood": rng.randint(0, 9)}
        out.append(repr(list(api.retrieve_by_attributes(agent, wanted))))
        out.append(repr(list(api.retrieve_by_location(agent, [rng.randint(0, 99), rng.randint(0, 99)], 2.0))))
        out.append(repr(list(api.retrieve_most_important(agent, 10))))
        out.append(repr(list(api.retrieve_similar_states(agent, {"position": [rng.randint(0, 99), rng.randint(0, 99)],
                                                                  "health": rng.randint(0, 100)}, k=10))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="10 agents x 2,000 steps")
    parser.add_argument("--queries", type=int, default=200, help="random queries of each kind to compare")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.steps = 10, 2000
    n = args.agents * args.steps
    agents = [f"agent-{i:03d}" for i in range(args.agents)]
    run = f"tmxfer-{os.getpid()}-{secrets.token_hex(3)}"
    print("tiermem export/import benchmark")
    print(f"python {sys.version.split()[0]}; redis-py {redis.__version__}; nproc {os.cpu_count()}; {args.redis_url}; "
          f"{args.agents} agents x {args.steps:,} steps = {n:,} memories; LTM SQLite; {args.queries} random queries "
          "of each kind compared")
    rng = random.Random(args.seed)
    same = True
    with tempfile.TemporaryDirectory(prefix="tiermem-xfer-") as scratch:
        source = engine(args, f"{run}-source", os.path.join(scratch, "source"))
        target = engine(args, f"{run}-target", os.path.join(scratch, "target"))
        try:
            started = time.perf_counter()
            for step in range(args.steps):
                source.store_many([{"agent_id": agent, "step_number": step, "data": state(rng, step),
                                    "priority": round(rng.random(), 2)} for agent in agents])
            stored = time.perf_counter() - started
            source.force_memory_maintenance()
            tiers = {name: 0 for name in ("stm", "im", "ltm")}
            for agent in agents:
                for name, held in source.get_memory_statistics(agent)["tiers"].items():
                    tiers[name] += held["count"]

            path = os.path.join(scratch, "memories.jsonl")
            started = time.perf_counter()
            with open(path, "w") as out:
                for item in source.export_memories(agents, tiers=True):
                    out.write(json.dumps(item) + "\n")
            exported = time.perf_counter() - started

            def load() -> tuple[float, Any]:
                began = time.perf_counter()
                with open(path) as lines:
                    report = target.import_memories((json.loads(line) for line in lines), tiers=True)
                return time.perf_counter() - began, report

            imported, first = load()
            again, second = load()
            same = answers(source, agents, args) == answers(target, agents, args)
            print(f"tiers of the source: STM {tiers['stm']:,}, IM {tiers['im']:,}, LTM {tiers['ltm']:,}; "
                  f"export file {os.path.getsize(path) / 2**20:,.1f} MiB ({os.path.getsize(path) / n:,.0f} bytes a memory)")
            print(f"{'step':<52}{'memories/s':>12}{'seconds':>10}")
            print(f"{'store_many, batches of ' + str(args.agents) + ' (baseline)':<52}{n / stored:>12,.0f}{stored:>10.1f}")
            print(f"{'export (tiers kept), to JSON Lines':<52}{n / exported:>12,.0f}{exported:>10.1f}")
            print(f"{'import --tiers: ' + str(first.imported) + ' stored, ' + str(first.skipped) + ' skipped':<52}"
                  f"{n / imported:>12,.0f}{imported:>10.1f}")
            print(f"{'the same import again: ' + str(second.imported) + ' stored, ' + str(second.skipped) + ' skipped':<52}"
                  f"{n / again:>12,.0f}{again:>10.1f}")
            print(f"every answer the same on both deployments ({args.agents} full time ranges, {4 * args.queries} "
                  f"other queries): {'yes' if same else 'NO'}")
        finally:
            for api in (source, target):
                for agent in agents:
                    api.clear_agent_memory(agent)
                api.close()
            client = redis.Redis.from_url(args.redis_url)
            delete_prefix(client, run)
            client.close()
    ok = same and first.imported == n and second.skipped == n
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
