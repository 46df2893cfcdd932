"""tiermem soak benchmark: memory per memory held stays flat under a steady mixed workload.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_soak.py --quick          # about 60 s
    .venv/bin/python benchmarks/bench_soak.py                  # 10 minutes
    .venv/bin/python benchmarks/bench_soak.py --minutes 3 --agents 40 --redis-url redis://127.0.0.1:6379/8

A standalone script, not a test, and a bounded one: it stops after --minutes.
One engine on a real Redis (its SQLite LTM in a temporary directory, text embedding off so no
model is loaded) and one team coordinator on the same Redis, driven at a fixed pace:

 - every step    each of --agents agents stores one state (one store_many for all of them), with
                 automatic maintenance on and small tier capacities (--stm-limit, --im-limit), so
                 STM and IM are full within the first minute or two and LTM takes the rest;
                 one time-range query (the last 50 steps), one similar-states query and one
                 location query, each for a random agent; the coordinator adds, claims and
                 completes two tasks; one signal is sent and the recipient reads its signals
 - every 10th    one attribute query ({"inventory.wood": n})

Every --interval seconds it prints one row: memories held per tier, the process RSS and its bytes
per memory held (all tiers), what the in-process indices hold (they hold LTM memories too, within
--index-mb), Redis ``used_memory`` (the whole server, so other clients of a shared Redis show in
it), the bytes this run's own keys take (MEMORY USAGE over the run's key prefix, found by SCAN)
and their bytes per memory held in Redis, and the bookkeeping that must not grow once capacity is
reached: the agents' change-log streams (XLEN), text-pending sets (ZCARD), the team's task,
order, attempt and result hashes (HLEN) and the recipient's signal stream (XLEN).

Capacity is reached once Redis holds 90% of agents x (STM + IM limits) and the indices 90% of
their budget. The verdict sets the last row against the row halfway between the first at
capacity and the end (the minutes right after capacity include the result cache, SQLite's page
caches and the allocator settling; the first-at-capacity ratio is printed too): the process RSS,
the run's Redis bytes and each bookkeeping size must stay within --tolerance (default 1.10) of
where they were, while LTM keeps growing on disk. The change logs are judged against their cap
instead: every agent's log, in every row, holds at most --change-log entries plus one stream node
(Redis's stream-node-max-entries), since approximate trimming drops whole nodes, so the sum
swings by up to a node per agent between rows. Bytes per memory held are printed for
information (they fall as LTM grows), as is the server-wide used_memory. Searches are exact
below --exact-limit rows and use FAISS above it (the engine's default is 5,000; the soak's 1,000
makes every agent's LTM index cross it in the first minutes, so its FAISS indices are part of
the steady state).

Nothing is flushed: every key lives under a unique prefix (tmsoak-<pid>-<hex>) and is deleted by
SCAN at the end; the SQLite LTM lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import SimAgent, delete_prefix, machine_info, progress  # noqa: E402
from memory import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402
from memory.team import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, RedisShortTermMemory  # noqa: E402
from tiers.coordination.keys import TeamKeys  # noqa: E402
from tiers.keys import KeySchema  # noqa: E402

WINDOW = 50  # steps per time-range query
TEAM, TASK_TYPE = "soak", "work"
SENDER = AgentCredentials("dispatcher", AccessTier.CONTRIBUTOR)
RECIPIENT = AgentCredentials("listener", AccessTier.CONTRIBUTOR)
SIGNAL = "tick"
CAPACITY_REACHED = 0.9  # memories in Redis, as a share of agents x (STM + IM limits)


def rss_bytes() -> int:
    """This process's resident set size now (not the peak that getrusage reports)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    elapsed: float
    steps: int
    stm: int
    im: int
    ltm: int
    rss: int
    used_memory: int
    prefix_bytes: int
    index_bytes: int
    changes: int
    changes_max: int
    pending: int
    tasks: int
    order: int
    attempts: int
    results: int
    signals: int
    steps_per_s: float

    @property
    def in_redis(self) -> int:
        return self.stm + self.im

    @property
    def held(self) -> int:
        return self.stm + self.im + self.ltm

    @property
    def rss_per_memory(self) -> float:
        return self.rss / self.held if self.held else 0.0

    @property
    def redis_per_memory(self) -> float:
        return self.prefix_bytes / self.in_redis if self.in_redis else 0.0


class Workload:
    """The engine, the coordinator and the simulated agents, stepped at a fixed pace."""

    def __init__(self, args: argparse.Namespace, prefix: str, tmp: str):
        self.args = args
        self.rng = random.Random(args.seed)
        self.sims = [SimAgent(i, args.seed) for i in range(args.agents)]
        self.agent_ids = [sim.agent_id for sim in self.sims]
        self.api = AgentMemoryAPI(MemoryConfig(
            redis_url=args.redis_url, key_prefix=prefix, data_dir=os.path.join(tmp, "data"),
            cleanup_interval=max(10, args.stm_limit // 4),
            stm_config={"memory_limit": args.stm_limit}, im_config={"memory_limit": args.im_limit},
            search_config={"text_embedding": "off", "index_memory_mb": args.index_mb, "exact_limit": args.exact_limit},
            change_log_limit=args.change_log, cache_size=args.cache_size,
        ))
        self.team = RedisShortTermMemory(args.redis_url, key_prefix=prefix, data_dir=os.path.join(tmp, "team"))
        self.coordinator = AgentCoordinator(self.team, TEAM, lease_seconds=60, retention_seconds=args.task_retention)
        self.step = 0
        self.tasks_added = 0
        self.last_state: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.team.close()
        self.api.close()

    def run_step(self) -> None:
        step, rng, api = self.step, self.rng, self.api
        records = []
        for sim in self.sims:
            state = sim.state(step)
            state["position"] = [state["x"], state["y"]]
            self.last_state[sim.agent_id] = state
            records.append({"agent_id": sim.agent_id, "data": state, "step_number": step})
        api.store_many(records)
        agent = rng.choice(self.agent_ids)
        api.retrieve_by_time_range(agent, max(0, step - WINDOW + 1), step)
        api.retrieve_similar_states(agent, self.last_state[rng.choice(self.agent_ids)], k=5)
        api.retrieve_by_location(agent, (rng.uniform(0, 100), rng.uniform(0, 100)), 10.0, limit=20)
        if step % 10 == 0:
            api.retrieve_by_attributes(rng.choice(self.agent_ids), {"inventory.wood": rng.randrange(10)}, limit=20)
        self.team_step(step)
        self.step += 1

    def team_step(self, step: int) -> None:
        coordinator = self.coordinator
        for _ in range(2):
            coordinator.add_task(AgentTask(f"task-{self.tasks_added}", TASK_TYPE, description="soak",
                                           priority=self.rng.randrange(10), context={"step": step}))
            self.tasks_added += 1
        worker = f"worker-{step % 4}"
        for task in coordinator.claim_tasks(worker, TASK_TYPE, 2):
            coordinator.complete_task(task.task_id, {"step": step, "ok": True}, agent_id=worker)
        self.team.send_signal(SENDER, SIGNAL, {"step": step}, target_agent=RECIPIENT.agent_id)
        self.team.receive_signals(RECIPIENT)


def measure(work: Workload, client: redis.Redis, prefix: str, elapsed: float, steps_per_s: float) -> Sample:
    """One row: tiers from the engine's statistics, sizes read straight from Redis."""
    statistics = work.api.get_memory_statistics()
    tiers = statistics["tiers"]
    keys, team = KeySchema(prefix), TeamKeys(prefix)
    tasks = team.team(TEAM)
    pipe = client.pipeline(transaction=False)
    for agent in work.agent_ids:
        pipe.xlen(keys.changes(agent))
        pipe.zcard(keys.pending(agent))
    for key in (tasks.tasks, tasks.order, tasks.attempts, tasks.results):
        pipe.hlen(key)
    pipe.xlen(team.inbox(RECIPIENT.agent_id, SIGNAL))
    answers = pipe.execute()
    per_agent = answers[: 2 * len(work.agent_ids)]
    changes, pending = per_agent[::2], per_agent[1::2]
    hashes, signals = answers[2 * len(work.agent_ids) : -1], answers[-1]
    return Sample(
        elapsed=elapsed, steps=work.step, stm=tiers["stm"]["count"], im=tiers["im"]["count"], ltm=tiers["ltm"]["count"],
        rss=rss_bytes(), used_memory=int(client.info("memory")["used_memory"]),
        prefix_bytes=prefix_bytes(client, prefix), index_bytes=statistics["indices"]["bytes"],
        changes=sum(changes), changes_max=max(changes), pending=sum(pending), tasks=hashes[0], order=hashes[1],
        attempts=hashes[2], results=hashes[3], signals=signals, steps_per_s=steps_per_s,
    )


def prefix_bytes(client: redis.Redis, prefix: str) -> int:
    """MEMORY USAGE (exact: SAMPLES 0) of every key under the run's prefix, found by SCAN."""
    total, batch = 0, []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            total += _usage(client, batch)
            batch = []
    return total + (_usage(client, batch) if batch else 0)


def _usage(client: redis.Redis, keys: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(size or 0 for size in pipe.execute())


COLUMNS = (
    ("elapsed", 7, lambda s: f"{s.elapsed:.0f}s"), ("steps", 6, lambda s: f"{s.steps:,}"),
    ("steps/s", 7, lambda s: f"{s.steps_per_s:.1f}"), ("stm", 7, lambda s: f"{s.stm:,}"),
    ("im", 7, lambda s: f"{s.im:,}"), ("ltm", 8, lambda s: f"{s.ltm:,}"),
    ("RSS MB", 7, lambda s: f"{s.rss / 2**20:.1f}"), ("RSS B/held", 10, lambda s: f"{s.rss_per_memory:,.0f}"),
    ("indices MB", 10, lambda s: f"{s.index_bytes / 2**20:.1f}"),
    ("used_memory MB", 14, lambda s: f"{s.used_memory / 2**20:.1f}"),
    ("run keys MB", 11, lambda s: f"{s.prefix_bytes / 2**20:.2f}"),
    ("B/in Redis", 10, lambda s: f"{s.redis_per_memory:,.0f}"),
    ("changes sum/max", 15, lambda s: f"{s.changes:,}/{s.changes_max:,}"), ("pending", 7, lambda s: f"{s.pending:,}"),
    ("tasks", 7, lambda s: f"{s.tasks:,}"), ("order", 7, lambda s: f"{s.order:,}"),
    ("attempts", 8, lambda s: f"{s.attempts:,}"), ("results", 7, lambda s: f"{s.results:,}"),
    ("signals", 7, lambda s: f"{s.signals:,}"),
)


def print_header_row() -> None:
    print("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS), flush=True)


def print_row(sample: Sample) -> None:
    print("  ".join(f"{show(sample):>{width}}" for _, width, show in COLUMNS), flush=True)


def soak(args: argparse.Namespace, client: redis.Redis, prefix: str, tmp: str) -> list[Sample]:
    work = Workload(args, prefix, tmp)
    samples: list[Sample] = []
    period = 1.0 / args.rate
    try:
        started = time.monotonic()
        deadline = started + args.minutes * 60
        next_row, due = started + args.interval, started
        steps_at_row, time_at_row = 0, started
        print_header_row()
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now < due:
                time.sleep(min(due, next_row, deadline) - now)
            else:
                work.run_step()
                due += period
                if due < now - 1.0:  # fallen behind by more than a second: do not try to catch up
                    due = now
            now = time.monotonic()
            if now >= next_row:
                rate = (work.step - steps_at_row) / (now - time_at_row)
                samples.append(measure(work, client, prefix, now - started, rate))
                print_row(samples[-1])
                steps_at_row, time_at_row = work.step, now
                next_row += args.interval
        now = time.monotonic()
        if work.step > steps_at_row:  # steps since the last row: one more row for them
            rate = (work.step - steps_at_row) / (now - time_at_row)
            samples.append(measure(work, client, prefix, now - started, rate))
            print_row(samples[-1])
    finally:
        work.close()
    return samples


def verdict(args: argparse.Namespace, samples: Sequence[Sample], node_entries: int) -> bool:
    capacity = args.agents * (args.stm_limit + args.im_limit)
    budget = args.index_mb << 20
    full = [s for s in samples if s.in_redis >= CAPACITY_REACHED * capacity
            and s.index_bytes >= CAPACITY_REACHED * budget]
    print()
    if len(full) < 2:
        print(f"verdict: capacity ({CAPACITY_REACHED:.0%} of {capacity:,} memories in Redis and of the "
              f"{args.index_mb} MiB index budget) was reached in {len(full)} rows, too few to compare; run longer "
              f"(--minutes) or with smaller limits")
        return False
    first, last = full[0], full[-1]
    settled = min(full, key=lambda s: abs(s.elapsed - (first.elapsed + last.elapsed) / 2))
    if settled is last:
        settled = full[-2]
    print(f"verdict: the last row ({last.elapsed:.0f} s) against the row halfway from the first at capacity "
          f"({settled.elapsed:.0f} s; first at capacity: {first.elapsed:.0f} s), tolerance {args.tolerance:.2f}; "
          f"LTM grew from {first.ltm:,} to {last.ltm:,} memories meanwhile")
    ok = True
    print(f"  {'':<48} {'halfway':>14}    {'last':>14}   {'ratio':>6}   {'':4}   since first at capacity")
    for name, pick, judged in (
        ("process RSS", lambda s: s.rss, True),
        ("in-process indices", lambda s: s.index_bytes, True),
        ("the run's Redis bytes", lambda s: s.prefix_bytes, True),
        ("change-log entries, all agents (information)", lambda s: s.changes, False),
        ("text-embedding queue, all agents", lambda s: s.pending, True),
        ("team task bodies kept", lambda s: s.tasks, True),
        ("team results kept", lambda s: s.results, True),
        ("signals kept (information: trimmed to the 300 s TTL)", lambda s: s.signals, False),
        ("process RSS per memory held (information)", lambda s: s.rss_per_memory, False),
        ("Redis used_memory, whole server (information)", lambda s: s.used_memory, False),
    ):
        before, after = pick(settled), pick(last)
        ratio = after / before if before else (1.0 if not after else float("inf"))
        since = after / pick(first) if pick(first) else (1.0 if not after else float("inf"))
        status = ("PASS" if ratio <= args.tolerance else "FAIL") if judged else ""
        ok &= ratio <= args.tolerance or not judged
        print(f"  {name:<48} {before:>14,.0f} -> {after:>14,.0f}   {ratio:6.3f}   {status:4}   {since:6.3f}")
    cap = args.change_log + node_entries
    largest = max(sample.changes_max for sample in samples)
    print(f"  largest change log of any agent in any row: {largest:,} entries, cap {cap:,} "
          f"({args.change_log:,} + one stream node of {node_entries:,})   {'PASS' if largest <= cap else 'FAIL'}")
    ok &= largest <= cap
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="Redis to use (nothing is flushed)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    parser.add_argument("--quick", action="store_true", help="about 60 s, smaller limits, a row every 10 s")
    parser.add_argument("--agents", type=int, default=20, help="simulated agents (default 20)")
    parser.add_argument("--rate", type=float, default=10.0, help="steps per second to aim at (default 10)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between rows (default 30)")
    parser.add_argument("--stm-limit", type=int, default=100, help="STM memory_limit per agent (default 100)")
    parser.add_argument("--im-limit", type=int, default=400, help="IM memory_limit per agent (default 400)")
    parser.add_argument("--index-mb", type=int, default=64, help="in-process index budget, MiB (default 64)")
    parser.add_argument("--exact-limit", type=int, default=1000,
                        help="rows searched exactly before FAISS takes over (default 1000; the engine's is 5000)")
    parser.add_argument("--change-log", type=int, default=2000, help="change_log_limit, ids per agent (default 2000)")
    parser.add_argument("--cache-size", type=int, default=1024, help="query results cached (default 1024)")
    parser.add_argument("--task-retention", type=float, default=120.0,
                        help="seconds a completed task is kept (default 120)")
    parser.add_argument("--tolerance", type=float, default=1.10, help="largest last/first ratio that passes")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.interval, args.stm_limit, args.im_limit, args.index_mb = 1.0, 10.0, 40, 120, 4
        args.change_log, args.cache_size, args.task_retention, args.exact_limit = 200, 64, 15.0, 300
    if args.agents < 1 or args.rate <= 0 or args.minutes <= 0 or args.interval <= 0:
        parser.error("--agents, --rate, --minutes and --interval must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    node_entries = int(client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    prefix = f"tmsoak-{os.getpid()}-{secrets.token_hex(3)}"
    print("tiermem soak benchmark")
    for line in machine_info(client):
        print(line)
    capacity = args.agents * (args.stm_limit + args.im_limit)
    print(f"workload: {args.agents} agents, {args.rate:g} steps/s for {args.minutes:g} min; STM limit "
          f"{args.stm_limit}, IM limit {args.im_limit} per agent (capacity {capacity:,} "
          f"memories in Redis), indices within {args.index_mb} MiB (FAISS above {args.exact_limit:,} rows), "
          f"change logs of {args.change_log:,} ids, {args.cache_size:,} cached answers, completed tasks kept "
          f"{args.task_retention:g} s; per step one store_many, a time-range, a similar-states and a location query, "
          f"2 tasks added/claimed/completed, 1 signal sent and read; an attribute query every 10 steps")
    print()
    try:
        with tempfile.TemporaryDirectory(prefix="tiermem-soak-") as tmp:
            samples = soak(args, client, prefix, tmp)
    finally:
        progress(f"deleted {delete_prefix(client, prefix):,} keys under {prefix}*")
        client.close()
    return 0 if verdict(args, samples, node_entries) else 1


if __name__ == "__main__":
    sys.exit(main())
