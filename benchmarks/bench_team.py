"""Coordination-layer benchmark: task, claim, signal and staging latency on a local Redis and on
the embedded default, plus claim throughput of 8 processes.

    .venv/bin/python benchmarks/bench_team.py                 # ~1 minute
    .venv/bin/python benchmarks/bench_team.py --ops 500 --tasks 20000 --redis-url redis://127.0.0.1:6379/12

A standalone script, not a test. Latencies are per call, wall clock
(perf_counter), reported as p50 / p90 / p99 in ms over --ops calls after 50 warm-up calls:

  task distribution   AgentCoordinator.add_task of one task
  claim latency       AgentCoordinator.claim_task (one Lua call) from a queue of --ops tasks
  signal round trip   send_signal to one agent, then that agent's receive_signals of that type
  pattern staging     AgentWorkspace.stage_pattern of one pattern (embedded: includes the
                      durable SQLite copy)

Claim throughput: --tasks tasks queued, then --procs processes (forked, one connection each)
claim until the queue is empty, started together at a barrier; claims/s = tasks / wall time.
"claim_task" claims one task per call (one round trip each); "claim_tasks(16)" claims up to 16
tasks per atomic call, for agents that take work in batches. Each task is claimed exactly once
(checked).

Raw redis-py baselines, on the same Redis in the same run: one EVALSHA of a script that returns
1 (the floor of any one-call operation), a pipelined ZADD + HSET (what a hand-written queue's add
writes, without checks, lease or idempotency), and --procs processes popping the same number of
ids with ZPOPMIN (a hand-written queue's claim: no lease, no heartbeat, no result).

Nothing is flushed: keys live under a unique prefix and are deleted by SCAN at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import AccessTier, AgentCoordinator, AgentTask, AgentWorkspace, RedisShortTermMemory, StagedPattern  # noqa: E402

WARMUP = 50
TARGETS_MS = {"redis": 0.5, "embedded": 0.2}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return pick(0.50), pick(0.90), pick(0.99)


def timed(call, count: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    return samples


def latencies(memory: RedisShortTermMemory, ops: int) -> dict[str, list[float]]:
    team = AgentCoordinator(memory, "bench")
    worker = AgentWorkspace("worker", short_term_memory=memory)
    lead = AgentWorkspace("lead", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
    total = ops + WARMUP
    results = {}
    add = timed(lambda i: team.add_task(AgentTask(f"bench_{i}", "benchmark", "Benchmark task", priority=5)), total)
    results["task distribution"] = add[WARMUP:]
    results["claim latency"] = timed(lambda i: team.claim_task("worker", "benchmark"), total)[WARMUP:]

    def round_trip(i: int) -> None:
        worker.send_signal("ping", {"n": i}, target_agent="lead")
        (signal,) = lead.receive_signals("ping")
        assert signal["data"] == {"n": i}

    results["signal round trip"] = timed(round_trip, total)[WARMUP:]
    results["pattern staging"] = timed(
        lambda i: worker.stage_pattern(StagedPattern(f"pat_{i}", "worker", "optimization", "Eager loading", "d", 0.88)),
        total,
    )[WARMUP:]
    return results


def raw_latencies(url: str, ops: int) -> dict[str, list[float]]:
    """The raw redis-py floors beside the Redis figures (see the module docstring)."""
    client = redis.Redis.from_url(url, protocol=2)
    root = f"tmbench-raw-{uuid.uuid4().hex[:8]}"
    sha = client.script_load("return 1")
    total = ops + WARMUP
    results = {"EVALSHA 'return 1'": timed(lambda i: client.evalsha(sha, 0), total)[WARMUP:]}

    def add(i: int) -> None:
        pipe = client.pipeline(transaction=True)
        pipe.zadd(f"{root}:queue", {f"raw_{i}": 5})
        pipe.hset(f"{root}:tasks", f"raw_{i}", b"x" * 64)
        pipe.execute()

    results["ZADD + HSET pipelined"] = timed(add, total)[WARMUP:]
    client.delete(f"{root}:queue", f"{root}:tasks")
    client.close()
    return results


def _raw_claimer(url: str, key: str, barrier, queue) -> None:
    client = redis.Redis.from_url(url, protocol=2)
    barrier.wait()
    claimed = 0
    while client.zpopmin(key):
        claimed += 1
    queue.put((claimed, time.perf_counter()))
    client.close()


def raw_throughput(url: str, tasks: int, procs: int) -> tuple[float, int]:
    client = redis.Redis.from_url(url, protocol=2)
    key = f"tmbench-raw-{os.getpid()}-{uuid.uuid4().hex[:8]}:queue"
    for start in range(0, tasks, 1000):
        client.zadd(key, {f"job-{i}": 5 for i in range(start, min(tasks, start + 1000))})
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=_raw_claimer, args=(url, key, barrier, queue)) for _ in range(procs)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    finished = [queue.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    client.delete(key)
    client.close()
    claimed = sum(count for count, _ in finished)
    return claimed / (max(at for _, at in finished) - started), claimed


def _claimer(url: str, prefix: str, batch: int, barrier, queue) -> None:
    memory = RedisShortTermMemory(url, key_prefix=prefix, data_dir=tempfile.mkdtemp())
    team = AgentCoordinator(memory, "throughput", lease_seconds=600)
    agent = f"claimer-{os.getpid()}"
    barrier.wait()
    claimed = 0
    if batch == 1:
        while team.claim_task(agent, "job") is not None:
            claimed += 1
    else:
        while got := team.claim_tasks(agent, "job", batch):
            claimed += len(got)
    queue.put((claimed, time.perf_counter()))
    memory.close()


def throughput(url: str, tasks: int, procs: int, batch: int) -> tuple[float, int]:
    prefix = f"tmbench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    memory = RedisShortTermMemory(url, key_prefix=prefix, data_dir=tempfile.mkdtemp())
    team = AgentCoordinator(memory, "throughput")
    for i in range(tasks):  # not timed; an add takes effect once, so it is called, not pipelined
        team._queue.add(f"job-{i}", AgentTask(f"job-{i}", "job").body(), 5, "job", memory.now_ms())
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(procs + 1), ctx.Queue()
    workers = [ctx.Process(target=_claimer, args=(url, prefix, batch, barrier, queue)) for _ in range(procs)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    finished = [queue.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    claimed = sum(count for count, _ in finished)
    elapsed = max(at for _, at in finished) - started
    cleanup(memory)
    return claimed / elapsed, claimed


def cleanup(memory: RedisShortTermMemory) -> None:
    keys = list(memory.client.scan_iter(match=f"{memory.keys.prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        memory.client.delete(*keys[start : start + 500])
    memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--ops", type=int, default=2000, help="timed calls per latency metric")
    parser.add_argument("--tasks", type=int, default=40000, help="tasks claimed in the throughput run")
    parser.add_argument("--procs", type=int, default=8)
    args = parser.parse_args()

    print(f"tiermem coordination benchmark  python {platform.python_version()}  {os.cpu_count()} CPUs  "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"latency: p50 / p90 / p99 in ms over {args.ops} calls (after {WARMUP} warm-up calls)\n")
    print(f"{'backend':<10} {'metric':<20} {'p50':>8} {'p90':>8} {'p99':>8}   target p50")
    with tempfile.TemporaryDirectory() as data_dir:
        backends = [
            ("redis", lambda: RedisShortTermMemory(args.redis_url, key_prefix=f"tmbench-{uuid.uuid4().hex[:8]}",
                                                   data_dir=data_dir)),
            ("embedded", lambda: RedisShortTermMemory(use_mock=True, key_prefix="tmbench", data_dir=data_dir)),
        ]
        for name, build in backends:
            memory = build()
            for metric, samples in latencies(memory, args.ops).items():
                p50, p90, p99 = percentiles(samples)
                target = TARGETS_MS[name]
                verdict = "ok" if p50 <= target else "MISSED"
                print(f"{name:<10} {metric:<20} {p50:8.3f} {p90:8.3f} {p99:8.3f}   <= {target} ms {verdict}")
            if name == "redis":
                cleanup(memory)
                for metric, samples in raw_latencies(args.redis_url, args.ops).items():
                    p50, p90, p99 = percentiles(samples)
                    print(f"{'raw':<10} {metric:<20} {p50:8.3f} {p90:8.3f} {p99:8.3f}   (redis-py baseline)")
            else:
                memory.close()
    print(f"\nclaim throughput: {args.procs} processes, {args.tasks} tasks, local Redis (target >= 10,000 claims/s)")
    for label, batch in (("claim_task", 1), ("claim_tasks(16)", 16)):
        rate, claimed = throughput(args.redis_url, args.tasks, args.procs, batch)
        assert claimed == args.tasks, f"claimed {claimed} of {args.tasks}"
        print(f"  {label:<26} {rate:10,.0f} claims/s   ({claimed} claimed, each once)")
    rate, claimed = raw_throughput(args.redis_url, args.tasks, args.procs)
    assert claimed == args.tasks, f"popped {claimed} of {args.tasks}"
    print(f"  {'raw redis-py ZPOPMIN':<26} {rate:10,.0f} pops/s     (baseline: no lease, no result)")


if __name__ == "__main__":
    main()
