"""tiermem sustained ingest: one agent storing states with maintenance running, beside the same stores without it.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_ingest.py --states 200000        # ~1 minute
    .venv/bin/python benchmarks/bench_ingest.py                        # 1,000,000 states (~4 minutes)

A standalone script, not a test. One agent stores --states simulation states (position, health,
energy, goal, inventory) in store_many batches of --batch, with the default tier limits (STM 1,000,
IM 10,000: nearly every state passes STM -> IM -> LTM, SQLite here) and automatic maintenance
every 100 stores, in each maintenance_mode:

  inline        the store that makes an agent due runs its maintenance before it returns
  background    a thread of the engine runs it; a store waits only for an agent a whole run behind

beside the baseline, measured in the same process on the same payloads: the same stores with
maintenance off (everything stays in STM). Per run: states/s over the whole run and over its last
quarter (LTM large by then), the longest a single store_many call took (the caller blocked), the
most STM and IM held after a store (HLEN of the tiers' hashes after every tenth batch, a
fraction of a millisecond), and the tiers at the end. The
target: >= 25,000 states/s with maintenance on.

Then a paced caller, as an agent loop that waits on other work between its stores: 10 agents,
--paced-calls store_many calls of 20 states (STM limit 200, IM 1,000, so maintenance runs all
along), 5 ms of the caller's own waiting between calls; the latency of each call, in each mode.
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
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import delete_prefix  # noqa: E402
from memory import AgentMemoryAPI, MemoryConfig  # noqa: E402
from tiers.keys import KeySchema  # noqa: E402

AGENT = "ingest-agent"
TARGET = 25_000  # states/s with maintenance on


def state(step: int, rng: random.Random) -> dict[str, Any]:
    return {"position": [rng.randint(0, 999), rng.randint(0, 999)], "health": rng.randint(0, 100),
            "energy": round(rng.random(), 3), "goal": rng.choice(["gather", "trade", "rest", "explore"]),
            "inventory": {"wood": rng.randint(0, 9), "stone": rng.randint(0, 9)}, "step": step}


def run(args: argparse.Namespace, contents: list[dict[str, Any]], prefix: str, mode: str | None) -> dict[str, Any]:
    """One agent's ingest; ``mode`` None: maintenance off (the baseline)."""
    n = len(contents)
    with tempfile.TemporaryDirectory(prefix="tiermem-ingest-") as data_dir:
        options: dict[str, Any] = {"cleanup_interval": 10**9} if mode is None else {"maintenance_mode": mode}
        config = MemoryConfig(redis_url=args.redis_url, key_prefix=f"{prefix}-{mode}", data_dir=data_dir, **options)
        client = redis.Redis.from_url(args.redis_url)
        held = {name: KeySchema(config.key_prefix).tier(AGENT, name).data for name in ("stm", "im")}
        with AgentMemoryAPI(config) as api:
            longest, most = 0.0, {"stm": 0, "im": 0}
            marks = []
            started = time.perf_counter()
            for number, start in enumerate(range(0, n, args.batch)):
                batch = [{"agent_id": AGENT, "step_number": step, "data": contents[step]}
                         for step in range(start, min(n, start + args.batch))]
                began = time.perf_counter()
                api.store_many(batch)
                longest = max(longest, time.perf_counter() - began)
                marks.append((start + len(batch), time.perf_counter()))
                if mode is not None and number % 10 == 9:
                    for name, key in held.items():
                        most[name] = max(most[name], client.hlen(key))
            elapsed = time.perf_counter() - started
            quarter = next(mark for mark in marks if mark[0] >= 3 * n // 4)
            last_rate = (n - quarter[0]) / max(marks[-1][1] - quarter[1], 1e-9)
            api.force_memory_maintenance(AGENT)
            tiers = {name: tier["count"] for name, tier in api.get_memory_statistics(AGENT)["tiers"].items()}
            api.clear_agent_memory(AGENT)
        client.close()
    return {"rate": n / elapsed, "last_rate": last_rate, "longest": longest, "most": most, "tiers": tiers}


def paced(args: argparse.Namespace, prefix: str, mode: str) -> list[float]:
    """Seconds each store_many call of the paced caller took, sorted."""
    took = []
    with tempfile.TemporaryDirectory(prefix="tiermem-ingest-") as data_dir:
        config = MemoryConfig(redis_url=args.redis_url, key_prefix=f"{prefix}-paced-{mode}", data_dir=data_dir,
                              maintenance_mode=mode, stm_config={"memory_limit": 200}, im_config={"memory_limit": 1000})
        with AgentMemoryAPI(config) as api:
            for call in range(args.paced_calls):
                batch = [{"agent_id": f"paced-{call % 10}", "step_number": call, "data": {"i": i, "position": [call % 50, i]}}
                         for i in range(20)]
                began = time.perf_counter()
                api.store_many(batch)
                took.append(time.perf_counter() - began)
                time.sleep(0.005)  # the caller's own work: a model call, a socket
            for agent in range(10):
                api.clear_agent_memory(f"paced-{agent}")
    return sorted(took)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--states", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="states per store_many call")
    parser.add_argument("--paced-calls", type=int, default=2000, help="store_many calls of the paced caller")
    args = parser.parse_args(argv)
    rng = random.Random(1)
    contents = [state(step, rng) for step in range(args.states)]
    prefix = f"tmingest-{os.getpid()}-{secrets.token_hex(3)}"
    print("tiermem sustained-ingest benchmark")
    print(f"python {sys.version.split()[0]}; redis-py {redis.__version__}; nproc {os.cpu_count()}; {args.redis_url}; "
          f"one agent, {args.states:,} states in store_many batches of {args.batch:,}; STM limit 1,000, IM 10,000; "
          "LTM SQLite; maintenance every 100 stores")
    ok = True
    try:
        baseline = run(args, contents, prefix, None)
        print(f"{'run':<34}{'states/s':>10}{'last 1/4':>10}{'x base':>8}{'longest call':>14}{'most STM/IM':>16}"
              "  tiers at the end (STM/IM/LTM)")
        print(f"{'maintenance off (baseline)':<34}{baseline['rate']:>10,.0f}{baseline['last_rate']:>10,.0f}"
              f"{1:>8.2f}{baseline['longest'] * 1000:>11.1f} ms{'':>16}")
        for mode in ("inline", "background"):
            got = run(args, contents, prefix, mode)
            passed = got["rate"] >= TARGET
            ok &= passed
            tiers, most = got["tiers"], got["most"]
            print(f"{'maintenance ' + mode:<34}{got['rate']:>10,.0f}{got['last_rate']:>10,.0f}"
                  f"{got['rate'] / baseline['rate']:>8.2f}{got['longest'] * 1000:>11.1f} ms"
                  f"{most['stm']:>9,}/{most['im']:,}  {tiers['stm']:,}/{tiers['im']:,}/{tiers['ltm']:,}"
                  f"   target >= {TARGET:,}/s: {'PASS' if passed else 'FAIL'}")
        print(f"paced caller: {args.paced_calls:,} store_many calls of 20 states over 10 agents, 5 ms of its own "
              "work between calls")
        print(f"{'maintenance_mode':<20}{'p50':>10}{'p99':>10}{'max':>10}")
        for mode in ("inline", "background"):
            took = paced(args, prefix, mode)
            p50, p99 = statistics.median(took), took[int(0.99 * (len(took) - 1))]
            print(f"{mode:<20}{p50 * 1000:>7.2f} ms{p99 * 1000:>7.2f} ms{took[-1] * 1000:>7.1f} ms")
    finally:
        client = redis.Redis.from_url(args.redis_url)
        delete_prefix(client, prefix)
        client.close()
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
