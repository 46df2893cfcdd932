"""tiermem on a Redis Cluster against one Redis server: batched-store throughput, same run.

    .venv/bin/python benchmarks/bench_cluster.py --quick     # ~1 min
    .venv/bin/python benchmarks/bench_cluster.py             # the reference run

It starts a Redis Cluster of its own (3 primaries on loopback ports from --port, with
--replicas replicas each, tests/cluster_support.py) unless --cluster-url names one, and uses the
Redis at --single-url as the single server. The default cluster has no replicas, as the single
server has none: on one machine, replicas spend the CPU the writers need (--replicas 1 shows
by how much). Two workloads, each interleaved (single, cluster, single,
...) for --rounds pairs so a noisy machine hits both alike:

 1. one process     store_many of --agents agents x --steps steps in batches of --batch
                    records (maintenance off: every record is a store), memories/s
 2. N writers       --writers processes, each storing its own agents the same way, started
                    together; the total memories/s over the wall time of the slowest

Targets: one process on the cluster >= 0.85x the single server; N writers on the cluster >= the
single server's total with N writers. Medians of the rounds, and their ratio, are printed.

Nothing is flushed: keys live under a unique prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cluster_support import LocalCluster  # noqa: E402
from memory import AgentMemoryAPI, MemoryConfig  # noqa: E402
from tiers import cluster  # noqa: E402


def states(agents: Sequence[str], steps: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"agent_id": agent, "step_number": step,
             "data": {"position": [rng.randint(0, 99), rng.randint(0, 99)], "health": rng.randint(0, 100),
                      "energy": round(rng.random(), 3), "goal": rng.choice(["gather", "trade", "rest", "explore"]),
                      "inventory": {"wood": rng.randint(0, 9), "stone": rng.randint(0, 9)}, "step": step}}
            for step in range(steps) for agent in agents]


def store_rate(url: str, prefix: str, records: list[dict[str, Any]], batch: int, data_dir: str) -> float:
    """memories/s of store_many over ``records`` (the engine opened and closed outside the clock)."""
    config = MemoryConfig(redis_url=url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=10**9,
                          stm_config={"memory_limit": 10**7})
    with AgentMemoryAPI(config) as api:
        api.store_many(records[:1])  # connections made, scripts loaded, agents registered from here
        started = time.perf_counter()
        for start in range(1, len(records), batch):
            api.store_many(records[start : start + batch])
        return (len(records) - 1) / (time.perf_counter() - started)


def _writer(url: str, prefix: str, records: list[dict[str, Any]], batch: int, data_dir: str,
            ready: Any, go: Any, done: Any) -> None:
    config = MemoryConfig(redis_url=url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=10**9,
                          stm_config={"memory_limit": 10**7})
    with AgentMemoryAPI(config) as api:
        api.store_many(records[:1])
        ready.wait()
        go.wait()
        for start in range(1, len(records), batch):
            api.store_many(records[start : start + batch])
        done.put((len(records) - 1, time.perf_counter()))


def writers_rate(url: str, prefix: str, per_writer: list[list[dict[str, Any]]], batch: int, data_dir: str) -> float:
    """Total memories/s of len(per_writer) processes started together."""
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Barrier(len(per_writer) + 1), context.Event(), context.Queue()
    processes = [context.Process(target=_writer, args=(url, prefix, records, batch, data_dir, ready, go, done))
                 for records in per_writer]
    for process in processes:
        process.start()
    ready.wait()
    started = time.perf_counter()
    go.set()
    results = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return sum(n for n, _ in results) / (max(end for _, end in results) - started)


def delete_prefix(url: str, prefix: str) -> int:
    client: Any = cluster.connect_url(url, socket_timeout=10, connect_timeout=2) if cluster.is_cluster_url(url) \
        else redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()
    return len(keys)


def interleaved(targets: dict[str, str], rounds: int, measure: Any) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {name: [] for name in targets}
    for round_no in range(rounds):
        for name, url in targets.items():
            figures[name].append(measure(name, url, round_no))
    return figures


def report(title: str, figures: dict[str, list[float]], target: float, unit: str = "memories/s") -> bool:
    single, on_cluster = statistics.median(figures["single"]), statistics.median(figures["cluster"])
    ratio = on_cluster / single
    verdict = "PASS" if ratio >= target else "FAIL"
    print(f"{title}")
    for name, values in figures.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:<8} median {statistics.median(values):>10,.0f} {unit}   (rounds: {shown})")
    print(f"  cluster / single = {ratio:.2f} (target >= {target:.2f})   {verdict}")
    return ratio >= target


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single-url", default="redis://127.0.0.1:6379/8", help="the single Redis server")
    parser.add_argument("--cluster-url", help="a Redis Cluster to use (default: start one of its own)")
    parser.add_argument("--port", type=int, default=7631, help="first port of the cluster it starts (default 7631)")
    parser.add_argument("--replicas", type=int, default=0, help="replicas per primary of the cluster it starts (default 0)")
    parser.add_argument("--agents", type=int, default=100, help="agents per process (default 100)")
    parser.add_argument("--steps", type=int, default=300, help="steps per agent (default 300)")
    parser.add_argument("--batch", type=int, default=1000, help="records per store_many (default 1000)")
    parser.add_argument("--writers", type=int, default=3, help="writer processes in workload 2 (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved pairs per workload (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (~1 min)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 100, 3
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = None if args.cluster_url else LocalCluster(args.port, replicas=args.replicas)
    cluster_url = args.cluster_url or started.url  # type: ignore[union-attr]
    prefix = f"tmclbench-{os.getpid()}-{secrets.token_hex(3)}"
    print("tiermem cluster benchmark")
    print(f"python  : {sys.version.split()[0]}; redis-py {redis.__version__}; nproc {os.cpu_count()}")
    print(f"single  : {args.single_url}")
    shape = f"3 primaries, {args.replicas} replica(s) each" if started else "given"
    print(f"cluster : {cluster_url} ({shape}, on this machine)")
    print(f"workload: {args.agents} agents x {args.steps} steps per process, store_many batches of {args.batch:,}, "
          f"maintenance off; {args.rounds} interleaved rounds per workload, {args.writers} writers in workload 2")
    print()
    targets = {"single": args.single_url, "cluster": cluster_url}
    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="tiermem-clbench-") as tmp:
            one = states([f"a{i}" for i in range(args.agents)], args.steps, 1)
            ok &= report("1. one process, batched store", interleaved(
                targets, args.rounds,
                lambda name, url, n: store_rate(url, f"{prefix}-{name}-{n}", one, args.batch, f"{tmp}/{name}{n}")),
                0.85)
            per_writer = [states([f"w{w}a{i}" for i in range(args.agents)], args.steps, 10 + w)
                          for w in range(args.writers)]
            ok &= report(f"2. {args.writers} writer processes, batched store (total)", interleaved(
                targets, args.rounds,
                lambda name, url, n: writers_rate(url, f"{prefix}-{name}-w{n}", per_writer, args.batch,
                                                  f"{tmp}/{name}w{n}")),
                1.0)
    finally:
        for url in targets.values():
            delete_prefix(url, prefix)
        if started is not None:
            started.stop()
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
