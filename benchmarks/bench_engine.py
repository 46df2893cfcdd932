"""tiermem engine benchmark: latency, throughput and bytes per memory against a real Redis.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_engine.py --quick          # 10 agents x 2,000 steps, ~20 s
    .venv/bin/python benchmarks/bench_engine.py                  # 100 agents x 10,000 steps
    .venv/bin/python benchmarks/bench_engine.py --agents 20 --steps 5000 --redis-url redis://127.0.0.1:6379/8

A standalone script, not a test. The workload is a seeded simulation: every
agent does a random walk on a grid and stores one ~15-field state per step (grid ints, floats
rounded to 2-3 decimals, a small inventory dict, enum-like strings, a short list of visible
agents, the step). One run, in this order:

 1. single store      store_agent_state on its own agents (default cleanup_interval=100), on
                      two engines in turn: without state vectors (the default) and with them
 2. batched store     store_many of every agent x every step, step-major batches of --batch
                      states, interleaved with the raw baseline: redis-py pipelined HSET of the
                      same msgpack payloads (packed beforehand, untimed: the stricter baseline).
                      Automatic maintenance is off here, so the whole history is a backlog in STM.
 3. STM-only reads    retrieve_by_time_range over 100 consecutive steps (cache cleared before
                      every call: cache-miss figures) and retrieve_by_attributes, on the first
                      half of the agents ("probe" agents); STM bytes per memory at the backlog
 4. maintenance       force_memory_maintenance over the backlog (STM limit 1,000, IM limit
                      4,000 for 10,000 steps; 10% and 40% of --steps in general)
 5. cross-tier reads  the same queries on the other half of the agents, which no read has
                      touched, so their tiers hold contiguous step ranges; the tier of every
                      returned row is checked and the mix printed; then windows placed across
                      the LTM/IM and IM/STM boundaries
 6. sizes             MEMORY USAGE (SAMPLES 0) of the STM and IM keys per memory; the SQLite
                      file and SUM(LENGTH(payload)) per LTM row against compact JSON
 7. async API         store_agent_state, get_memory and retrieve_by_time_range (STM, cache
                      cleared), then time ranges and get_memory on agents whose history is
                      mostly in LTM, on an AgentMemoryAPI and an AsyncAgentMemoryAPI called in
                      turn from one event loop, each on its own prefix, and the ratio of their p50s

Nothing is flushed: every key lives under a unique prefix (tmbench-<pid>-<hex>) and is deleted
by SCAN at the end; the SQLite LTM lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import AgentMemoryAPI, AsyncAgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402
from tiers.keys import KeySchema  # noqa: E402
from tiers.scripts import evalsha  # noqa: E402

WINDOW = 100  # steps per time-range query
# Tier limits default to 10% and 40% of --steps (1,000 and 4,000 for 10,000 steps), so after
# maintenance each agent holds ~52% of its history in LTM, ~38% in IM and 10% in STM.
STM_SHARE, IM_SHARE = 0.10, 0.40
ATTRIBUTE_QUERY = {"inventory.wood": 3}

# Targets: (comparison, value). "<=" for latencies and ratios, ">=" for throughputs.
TARGETS = {
    "single_p50_ms": ("<=", 0.2),
    "batched_per_s": (">=", 50_000),
    "range_stm_p50_ms": ("<=", 1.0),
    "range_tiers_p50_ms": ("<=", 2.0),
    "maintenance_per_s": (">=", 30_000),
    "ltm_payload_over_json": ("<=", 0.25),
    "state_vector_store_ratio": ("<=", 1.5),
    "async_over_sync": ("<=", 1.3),
}


# -- the simulated workload --------------------------------------------------------------------
GRID = 100
WORLD = 100  # agent ids that can appear in "visible", whatever --agents is
HEADINGS = ("N", "E", "S", "W")
TERRAINS = ("grass", "forest", "water", "rock", "sand")
ACTIONS = ("move", "gather", "rest", "trade", "attack", "flee")
GOALS = ("explore", "harvest", "return", "socialize")
MOODS = ("calm", "alert", "afraid", "content", "hungry")
ITEMS = ("wood", "stone", "food", "gold")


def agent_name(index: int) -> str:
    return f"agent-{index:03d}"


class SimAgent:
    """One simulated agent: a seeded random walk, one state dict per step."""

    def __init__(self, index: int, seed: int, name: str | None = None):
        self.index = index
        self.agent_id = name or agent_name(index)
        self.rng = rng = random.Random(seed * 1_000_003 + index)
        self.x, self.y = rng.randrange(GRID), rng.randrange(GRID)
        self.health, self.energy = 100.0, 100.0
        self.inventory = {item: rng.randrange(10) for item in ITEMS}

    def state(self, step: int) -> dict[str, Any]:
        rng = self.rng
        self.x = min(GRID - 1, max(0, self.x + rng.randint(-1, 1)))
        self.y = min(GRID - 1, max(0, self.y + rng.randint(-1, 1)))
        self.health = min(100.0, max(0.0, self.health + rng.uniform(-2.0, 1.5)))
        self.energy = min(100.0, max(0.0, self.energy + rng.uniform(-3.0, 2.5)))
        if rng.random() < 0.3:
            item = rng.choice(ITEMS)
            self.inventory[item] = min(9, max(0, self.inventory[item] + rng.choice((-1, 1))))
        return {
            "step": step,
            "x": self.x,
            "y": self.y,
            "heading": rng.choice(HEADINGS),
            "terrain": rng.choice(TERRAINS),
            "health": round(self.health, 2),
            "energy": round(self.energy, 2),
            "hunger": round(rng.random(), 3),
            "reward": round(rng.uniform(-1.0, 1.0), 3),
            "action": rng.choice(ACTIONS),
            "goal": rng.choice(GOALS),
            "mood": rng.choice(MOODS),
            "alive": self.health > 0.0,
            "inventory": dict(self.inventory),
            "visible": [agent_name(i) for i in rng.sample(range(WORLD), rng.randint(0, 4))],
        }


def compact_json_size(state: dict[str, Any]) -> int:
    return len(json.dumps(state, separators=(",", ":")).encode())


# -- small helpers ------------------------------------------------------------------------------
def percentiles_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": p50, "p90": p90, "p99": p99, "mean": values.mean(), "n": len(values)}


def verdict(target: str, value: float) -> tuple[str, str]:
    """('<= 0.2', 'PASS') style target text and status for a TARGETS entry."""
    op, bound = TARGETS[target]
    ok = value <= bound if op == "<=" else value >= bound
    return f"{op} {bound:,g}", "PASS" if ok else "MISS"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def windows(rng: random.Random, agent_ids: Sequence[str], steps: int, n: int) -> list[tuple[str, int]]:
    """n random (agent, first step) pairs for 100-step windows inside [0, steps)."""
    return [(rng.choice(agent_ids), rng.randrange(0, steps - WINDOW + 1)) for _ in range(n)]


def make_config(
    args: argparse.Namespace, prefix: str, data_dir: str, cleanup_interval: int, state_vectors: bool = False
) -> MemoryConfig:
    """The engine as the tiered-storage figures measure it: no state vectors and no text queue
    (their cost is the "with a state vector" row, set against the same run's store without)."""
    return MemoryConfig(
        redis_url=args.redis_url,
        key_prefix=prefix,
        data_dir=data_dir,
        cleanup_interval=cleanup_interval,
        stm_config={"memory_limit": args.stm_limit},
        im_config={"memory_limit": args.im_limit},
        search_config={"state_vectors": state_vectors, "text_embedding": "off"},
    )


@dataclass
class Report:
    """What gets printed at the end: latency rows, figure rows and free-form notes."""

    latency: list[tuple[str, dict[str, float], str, str]] = field(default_factory=list)
    figures: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_latency(self, name: str, stats: dict[str, float], target: str | None = None) -> None:
        if target is None:
            self.latency.append((name, stats, "", ""))
        else:
            self.latency.append((name, stats, *verdict(target, stats["p50"])))

    def add_figure(self, name: str, value: str, target: str | None = None, measured: float | None = None) -> None:
        if target is None:
            self.figures.append((name, value, "", ""))
        else:
            self.figures.append((name, value, *verdict(target, measured)))  # type: ignore[arg-type]


# -- 0. the machine ---------------------------------------------------------------------------------
def machine_info(client: redis.Redis) -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    server = client.info("server")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine : nproc {usable} ({cpu}), {platform.system()} {platform.release()}",
        f"python  : {platform.python_implementation()} {platform.python_version()}; redis-py {redis.__version__}, "
        f"msgpack {'.'.join(map(str, msgpack.version))}",
        f"redis   : {server['redis_version']} ({server.get('arch_bits', '?')}-bit, {server.get('multiplexing_api', '?')})",
        f"load    : 1-minute load average {os.getloadavg()[0]:.2f} at the start (other processes share the CPUs and Redis)",
    ]


# -- 1. single store --------------------------------------------------------------------------------
def measure_single_store(
    args: argparse.Namespace, client: redis.Redis, prefix: str, data_dir: str
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """store_agent_state latency, round-robin over 10 agents (default cleanup_interval=100), on
    two engines called in turn, one without state vectors (the default) and one with, so both
    see the same moments of this machine; between them, the round trip of a script that does
    nothing, sent the way tiermem sends its scripts: this machine's floor for any store.
    Returns (without, with, floor)."""
    noop = client.script_load("return 1")
    sims = [SimAgent(10_000 + i, args.seed, name=f"solo-{i:02d}") for i in range(10)]
    per_agent = -(-args.single_calls // len(sims))
    configs = [make_config(args, f"{prefix}{v}", f"{data_dir}{v}", cleanup_interval=100, state_vectors=v)
               for v in (False, True)]
    with AgentMemoryAPI(configs[0]) as plain, AgentMemoryAPI(configs[1]) as vectored:
        engines = (plain, vectored)
        warm = SimAgent(9_999, args.seed, name="solo-warmup")
        for step in range(200):
            state = warm.state(step)
            for engine in engines:
                engine.store_agent_state(warm.agent_id, state, step)
        samples: tuple[list[int], list[int]] = ([], [])
        floor: list[int] = []
        for step in range(per_agent):
            for sim in sims:
                state = sim.state(step)
                for engine, kept in zip(engines, samples):
                    started = time.perf_counter_ns()
                    engine.store_agent_state(sim.agent_id, state, step)
                    kept.append(time.perf_counter_ns() - started)
                started = time.perf_counter_ns()
                evalsha(client, noop, [], [])
                floor.append(time.perf_counter_ns() - started)
    return percentiles_ms(samples[0]), percentiles_ms(samples[1]), percentiles_ms(floor)


# -- 7. the async API beside the sync one -------------------------------------------------------------
DEEP_AGENTS, DEEP_STEPS = 4, 2000  # agents whose history lies mostly in LTM (after maintenance)


def measure_async(args: argparse.Namespace, prefix: str, data_dir: str) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    """Per-call latency of the sync and the async API, called in turn from one event loop (the
    sync engine blocks it, nothing else runs), so both see the same moments of this machine:
    {operation: (sync stats, async stats)}. The single stores' agents stay in STM; a few agents
    with a longer history, moved down by maintenance, answer the cross-tier reads."""
    return asyncio.run(_measure_async(args, prefix, data_dir))


async def _measure_async(args: argparse.Namespace, prefix: str, data_dir: str
                         ) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    sims = [SimAgent(20_000 + i, args.seed, name=f"async-{i:02d}") for i in range(10)]
    steps = max(WINDOW, -(-args.single_calls // len(sims)))

    def config(flavour: str) -> MemoryConfig:
        return MemoryConfig(redis_url=args.redis_url, key_prefix=f"{prefix}{flavour}", data_dir=f"{data_dir}{flavour}",
                            stm_config={"memory_limit": steps}, im_config={"memory_limit": steps},
                            search_config={"text_embedding": "off"})

    samples: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    clock = time.perf_counter_ns

    async def pair(row: str, method: str, *arguments: Any, own: tuple[Any, ...] = ()) -> tuple[Any, Any]:
        """The same call on both APIs (``own``: the async one's arguments, when they differ), each timed."""
        started = clock()
        expected = getattr(sync, method)(*arguments)
        samples[row][0].append(clock() - started)
        started = clock()
        got = await getattr(api, method)(*(own or arguments))
        samples[row][1].append(clock() - started)
        return expected, got

    async def ranges(row: str, agent_ids: list[str], steps: int) -> None:
        for agent, start in windows(rng, agent_ids, steps, args.queries):
            await api.clear_cache()
            sync.clear_cache()
            expected, got = await pair(row, "retrieve_by_time_range", agent, start, start + WINDOW - 1)
            if [m["contents"] for m in got] != [m["contents"] for m in expected]:
                raise AssertionError(f"the async API answered {agent} {start} otherwise than the sync one")

    rng = random.Random(args.seed)
    sync = AgentMemoryAPI(config("sync"))
    try:
        async with AsyncAgentMemoryAPI(config("async")) as api:
            ids = []
            for step in range(steps):
                for sim in sims:
                    ids.append((sim.agent_id, *await pair("store_agent_state", "store_agent_state", sim.agent_id,
                                                          sim.state(step), step)))
            for agent, sync_id, async_id in ids:
                await pair("get_memory", "get_memory", agent, sync_id, own=(agent, async_id))
            await ranges("retrieve_by_time_range", [sim.agent_id for sim in sims], steps)
            deep = [SimAgent(30_000 + i, args.seed, name=f"deep-{i}") for i in range(DEEP_AGENTS)]
            records = [{"agent_id": sim.agent_id, "data": sim.state(step), "step_number": step}
                       for sim in deep for step in range(DEEP_STEPS)]
            stored = (sync.store_many(records), await api.store_many(records))
            sync.force_memory_maintenance()
            await api.force_memory_maintenance()
            await ranges("retrieve_by_time_range across tiers", [sim.agent_id for sim in deep], DEEP_STEPS)
            oldest = [(r["agent_id"], a, b) for r, a, b in zip(records, *stored) if r["step_number"] < DEEP_STEPS // 2]
            for agent, sync_id, async_id in rng.sample(oldest, min(len(oldest), args.queries)):
                await pair("get_memory from LTM", "get_memory", agent, sync_id, own=(agent, async_id))
    finally:
        sync.close()
    return {op: (percentiles_ms(a), percentiles_ms(b)) for op, (a, b) in samples.items()}


# -- 2. batched store and the raw baseline ----------------------------------------------------------
@dataclass
class LoadResult:
    states: int = 0
    tiermem_seconds: float = 0.0
    raw_seconds: float = 0.0
    batch_ns: list[int] = field(default_factory=list)
    json_bytes: np.ndarray | None = None  # [agent index, step] compact JSON size
    msgpack_bytes: int = 0


def timed_store_many(engine: AgentMemoryAPI, records: list[dict[str, Any]]) -> int:
    started = time.perf_counter_ns()
    engine.store_many(records)
    return time.perf_counter_ns() - started


def timed_raw_hset(client: redis.Redis, writes: list[tuple[str, int, bytes]]) -> int:
    started = time.perf_counter_ns()
    pipe = client.pipeline(transaction=False)
    for key, step, payload in writes:
        pipe.hset(key, step, payload)
    pipe.execute()
    return time.perf_counter_ns() - started


def load_workload(
    args: argparse.Namespace, engine: AgentMemoryAPI, client: redis.Redis, raw_prefix: str
) -> LoadResult:
    """Store agents x steps states with store_many; after each batch, the same payloads raw."""
    sims = [SimAgent(i, args.seed) for i in range(args.agents)]
    raw_keys = [f"{raw_prefix}:{{{sim.agent_id}}}:data" for sim in sims]
    steps_per_batch = max(1, args.batch // args.agents)
    result = LoadResult(json_bytes=np.zeros((args.agents, args.steps), dtype=np.int32))
    for first in range(0, args.steps, steps_per_batch):
        records, writes = [], []
        for step in range(first, min(first + steps_per_batch, args.steps)):
            for sim, raw_key in zip(sims, raw_keys):
                state = sim.state(step)
                records.append({"agent_id": sim.agent_id, "data": state, "step_number": step})
                payload = msgpack.packb(state, use_bin_type=True)
                writes.append((raw_key, step, payload))
                result.json_bytes[sim.index, step] = compact_json_size(state)
                result.msgpack_bytes += len(payload)
        elapsed = timed_store_many(engine, records)
        result.batch_ns.append(elapsed)
        result.tiermem_seconds += elapsed / 1e9
        result.raw_seconds += timed_raw_hset(client, writes) / 1e9
        result.states += len(records)
        if first // steps_per_batch % 200 == 0:
            progress(f"  loaded steps {first:,}..{first + steps_per_batch - 1:,} of {args.steps:,}")
    client.unlink(*raw_keys)
    return result


# -- 3 and 5. queries --------------------------------------------------------------------------------
@dataclass
class QueryStats:
    samples_ns: list[int] = field(default_factory=list)
    by_tiers: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    rows_by_tier: Counter = field(default_factory=Counter)
    rows: int = 0


def tier_label(result: Iterable[dict[str, Any]]) -> str:
    present = {row["tier"] for row in result}
    return "+".join(t for t in ("ltm", "im", "stm") if t in present) or "none"


def measure_time_range(engine: AgentMemoryAPI, queries: Sequence[tuple[str, int]]) -> QueryStats:
    """retrieve_by_time_range latency with the result cache cleared before every call."""
    stats = QueryStats()
    for agent_id, start in queries:
        engine.clear_cache()
        started = time.perf_counter_ns()
        result = engine.retrieve_by_time_range(agent_id, start, start + WINDOW - 1)
        elapsed = time.perf_counter_ns() - started
        steps = [row["step_number"] for row in result]
        if steps != list(range(start, start + WINDOW)):
            raise AssertionError(f"{agent_id} window {start}: got {len(steps)} rows, not steps {start}..{start + 99}")
        stats.samples_ns.append(elapsed)
        stats.by_tiers[tier_label(result)].append(elapsed)
        stats.rows_by_tier.update(row["tier"] for row in result)
        stats.rows += len(result)
    return stats


def measure_attributes(engine: AgentMemoryAPI, agent_ids: Sequence[str], n: int) -> tuple[dict[str, float], QueryStats]:
    """retrieve_by_attributes({"inventory.wood": 3}) latency, cache cleared, over the agents in
    turn (by default 20 calls over 50 agents: each call is its agent's first, which builds the
    agent's indices from the tiers)."""
    stats = QueryStats()
    for i in range(n):
        agent_id = agent_ids[i % len(agent_ids)]
        engine.clear_cache()
        started = time.perf_counter_ns()
        result = engine.retrieve_by_attributes(agent_id, ATTRIBUTE_QUERY)
        stats.samples_ns.append(time.perf_counter_ns() - started)
        if any(row["contents"]["inventory"]["wood"] != 3 for row in result):
            raise AssertionError("retrieve_by_attributes returned a non-matching memory")
        stats.rows_by_tier.update(row["tier"] for row in result)
        stats.rows += len(result)
    return percentiles_ms(stats.samples_ns), stats


def boundary_windows(client: redis.Redis, keys: KeySchema, agent_ids: Sequence[str], steps: int) -> list[tuple[str, int]]:
    """Windows centred on each agent's LTM/IM and IM/STM step boundaries."""
    out = []
    for agent_id in agent_ids:
        for tier in ("im", "stm"):
            lowest = client.zrange(keys.tier(agent_id, tier).step, 0, 0, withscores=True)
            if lowest:
                start = int(lowest[0][1]) - WINDOW // 2
                out.append((agent_id, min(max(0, start), steps - WINDOW)))
    return out


# -- 4. maintenance --------------------------------------------------------------------------------
def measure_maintenance(engine: AgentMemoryAPI) -> dict[str, float]:
    started = time.perf_counter()
    report = engine.force_memory_maintenance()
    wall = time.perf_counter() - started
    return {
        "moved": report.moved,
        "stm_to_im": report.stm_to_im,
        "im_to_ltm": report.im_to_ltm,
        "seconds": report.seconds,
        "wall": wall,
        "per_s": report.moved / report.seconds if report.seconds else 0.0,
        "per_s_wall": report.moved / wall if wall else 0.0,
    }


# -- 6. sizes ------------------------------------------------------------------------------------------
def redis_bytes_per_memory(client: redis.Redis, keys: KeySchema, agent_ids: Sequence[str], tier: str) -> tuple[float, int]:
    """MEMORY USAGE (SAMPLES 0, i.e. exact) of the tier's keys over its memory count."""
    pipe = client.pipeline(transaction=False)
    for agent_id in agent_ids:
        tk = keys.tier(agent_id, tier)
        for key in tk.all():
            pipe.memory_usage(key, samples=0)
        pipe.hlen(tk.data)
    answers = pipe.execute()
    per_agent = len(keys.tier(agent_ids[0], tier).all()) + 1 if agent_ids else 1
    total_bytes = total_count = 0
    for i in range(0, len(answers), per_agent):
        total_bytes += sum(b or 0 for b in answers[i : i + per_agent - 1])
        total_count += answers[i + per_agent - 1]
    return (total_bytes / total_count if total_count else 0.0), total_count


def ltm_sizes(db_path: str, namespace: str, json_bytes: np.ndarray) -> dict[str, float]:
    """SQLite file bytes, payload bytes and compact JSON bytes per LTM row."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows, payload, raw = conn.execute(
            "SELECT COUNT(*), SUM(LENGTH(payload)), SUM(raw_size) FROM tiermem_ltm WHERE namespace = ?", (namespace,)
        ).fetchone()
        json_total = 0
        for agent_id, step in conn.execute("SELECT agent_id, step FROM tiermem_ltm WHERE namespace = ?", (namespace,)):
            json_total += int(json_bytes[int(agent_id.rsplit("-", 1)[1]), step])
    conn.close()
    file_bytes = sum(os.path.getsize(p) for p in (db_path, db_path + "-wal") if os.path.exists(p))
    if not rows:
        return {"rows": 0}
    return {
        "rows": rows,
        "file_per_row": file_bytes / rows,
        "payload_per_row": payload / rows,
        "msgpack_per_row": raw / rows,
        "json_per_row": json_total / rows,
        "payload_over_json": payload / json_total,
    }


def delete_prefix(client: redis.Redis, root: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{root}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


# -- the run --------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, client: redis.Redis, root: str, tmp: str) -> Report:
    report = Report()
    rng = random.Random(args.seed)
    agent_ids = [agent_name(i) for i in range(args.agents)]
    half = max(1, args.agents // 2)
    probe, cross = agent_ids[:half], agent_ids[half:] or agent_ids

    progress(f"1/7 single store: {args.single_calls:,} store_agent_state calls")
    plain, with_vector, floor = measure_single_store(args, client, f"{root}.solo", f"{tmp}/solo")
    report.add_latency("store_agent_state (single call)", plain, "single_p50_ms")
    report.add_latency("  round trip of a script doing nothing (floor)", floor)
    report.add_latency("store_agent_state with a state vector (state_vectors=True)", with_vector)
    ratio = with_vector["p50"] / plain["p50"]
    report.add_figure("p50 with a state vector / without", f"{ratio:.2f}", "state_vector_store_ratio", ratio)

    main_prefix, main_dir = f"{root}.main", f"{tmp}/main"
    keys = KeySchema(main_prefix)
    # cleanup_interval 2**53: never; maintenance runs when the benchmark says
    engine = AgentMemoryAPI(make_config(args, main_prefix, main_dir, cleanup_interval=2**53))
    try:
        progress(f"2/7 batched store: {args.agents:,} agents x {args.steps:,} steps, batches of ~{args.batch:,}")
        load = load_workload(args, engine, client, f"{root}.raw")
        tiermem_rate = load.states / load.tiermem_seconds
        raw_rate = load.states / load.raw_seconds
        batch = percentiles_ms(load.batch_ns)
        report.add_figure(f"store_many, batches of {load.states // len(load.batch_ns):,} (states/s)",
                          f"{tiermem_rate:,.0f}", "batched_per_s", tiermem_rate)
        report.add_figure("raw redis-py pipelined HSET, same payloads (states/s)", f"{raw_rate:,.0f}")
        report.add_figure("ratio tiermem batched / raw HSET", f"{tiermem_rate / raw_rate:.2f}")
        report.notes.append(
            f"store_many: {load.states:,} states in {load.tiermem_seconds:.1f} s; per batch p50 {batch['p50']:.1f} ms, "
            f"p99 {batch['p99']:.1f} ms; raw HSET {load.raw_seconds:.1f} s (payloads packed beforehand, untimed)"
        )

        progress(f"3/7 STM-only queries on {len(probe)} probe agents")
        stm_range = measure_time_range(engine, windows(rng, probe, args.steps, args.queries))
        report.add_latency("retrieve_by_time_range, STM only (miss)", percentiles_ms(stm_range.samples_ns),
                           "range_stm_p50_ms")
        stm_attr, stm_attr_rows = measure_attributes(engine, probe, args.attr_queries)
        report.add_latency(f"retrieve_by_attributes {ATTRIBUTE_QUERY}, STM only", stm_attr)
        report.notes.append(f"STM-only time-range rows by tier: {dict(stm_range.rows_by_tier)}; "
                            f"attribute matches per query: {stm_attr_rows.rows / args.attr_queries:,.0f}")
        stm_backlog, stm_count = redis_bytes_per_memory(client, keys, agent_ids, "stm")
        report.add_figure(f"Redis bytes/memory, STM backlog ({stm_count // args.agents:,}/agent)", f"{stm_backlog:,.0f}")

        progress("4/7 maintenance over the backlog")
        maint = measure_maintenance(engine)
        report.add_figure("force_memory_maintenance (memories moved/s)", f"{maint['per_s']:,.0f}",
                          "maintenance_per_s", maint["per_s"])
        report.notes.append(
            f"maintenance moved {maint['moved']:,} (stm>im {maint['stm_to_im']:,}, im>ltm {maint['im_to_ltm']:,}) "
            f"in {maint['seconds']:.1f} s (report.seconds; wall {maint['wall']:.1f} s, {maint['per_s_wall']:,.0f}/s)"
        )
        layout = engine.get_memory_statistics()["tiers"]
        report.notes.append("after maintenance, memories per tier: "
                            + ", ".join(f"{t} {layout[t]['count']:,}" for t in ("stm", "im", "ltm")))

        progress(f"5/7 cross-tier queries on {len(cross)} untouched agents")
        tier_range = measure_time_range(engine, windows(rng, cross, args.steps, args.queries))
        report.add_latency("retrieve_by_time_range, all tiers (miss)", percentiles_ms(tier_range.samples_ns),
                           "range_tiers_p50_ms")
        for label in sorted(tier_range.by_tiers, key=lambda name: (name.count("+"), name)):
            report.add_latency(f"  windows answered by {label}", percentiles_ms(tier_range.by_tiers[label]))
        edge = measure_time_range(engine, boundary_windows(client, keys, cross, args.steps))
        for label in sorted(edge.by_tiers, key=lambda name: (name.count("+"), name)):
            report.add_latency(f"  boundary windows answered by {label}", percentiles_ms(edge.by_tiers[label]))
        tiers_attr, tiers_attr_rows = measure_attributes(engine, cross, args.attr_queries)
        report.add_latency(f"retrieve_by_attributes {ATTRIBUTE_QUERY}, all tiers", tiers_attr)
        mix = tier_range.rows_by_tier
        report.notes.append(
            "all-tier time-range rows by tier: "
            + ", ".join(f"{t} {mix[t]:,} ({mix[t] / tier_range.rows:.0%})" for t in ("stm", "im", "ltm"))
            + "; windows by tiers answering: "
            + ", ".join(f"{label} {len(s)}" for label, s in sorted(tier_range.by_tiers.items()))
        )
        report.notes.append(
            "boundary windows by tiers answering: "
            + ", ".join(f"{label} {len(s)}" for label, s in sorted(edge.by_tiers.items()))
            + f"; attribute matches per query (all tiers): {tiers_attr_rows.rows / args.attr_queries:,.0f} "
            + f"{dict(tiers_attr_rows.rows_by_tier)}"
        )

        progress("6/7 sizes")
        stm_bytes, stm_count = redis_bytes_per_memory(client, keys, agent_ids, "stm")
        im_bytes, im_count = redis_bytes_per_memory(client, keys, agent_ids, "im")
        report.add_figure(f"Redis bytes/memory, STM ({stm_count // args.agents:,}/agent)", f"{stm_bytes:,.0f}")
        report.add_figure(f"Redis bytes/memory, IM ({im_count // args.agents:,}/agent)", f"{im_bytes:,.0f}")
    finally:
        engine.close()
    progress(f"7/7 the async API beside the sync one: {args.single_calls:,} stores, as many reads, "
             f"{args.queries:,} time ranges each")
    for op, (sync_stats, async_stats) in measure_async(args, f"{root}.async", f"{tmp}/async").items():
        report.add_latency(f"{op}: AgentMemoryAPI (same run as below)", sync_stats)
        report.add_latency(f"{op}: AsyncAgentMemoryAPI", async_stats)
        ratio = async_stats["p50"] / sync_stats["p50"]
        report.add_figure(f"p50 async / sync, {op}", f"{ratio:.2f}", "async_over_sync", ratio)
    ltm = ltm_sizes(f"{main_dir}/ltm.sqlite", main_prefix, load.json_bytes)
    if ltm["rows"]:
        report.add_figure(f"LTM SQLite file bytes/row ({ltm['rows']:,} rows)", f"{ltm['file_per_row']:,.0f}")
        report.add_figure("LTM payload bytes/row (SUM(LENGTH(payload)))", f"{ltm['payload_per_row']:,.1f}")
        report.add_figure("LTM payload bytes / compact JSON bytes", f"{ltm['payload_over_json']:.3f}",
                          "ltm_payload_over_json", ltm["payload_over_json"])
        report.notes.append(
            f"per LTM row: compact JSON {ltm['json_per_row']:.1f} B, msgpack {ltm['msgpack_per_row']:.1f} B, "
            f"zstd payload {ltm['payload_per_row']:.1f} B; all states: JSON "
            f"{load.json_bytes.mean():.1f} B, msgpack {load.msgpack_bytes / load.states:.1f} B"
        )
    return report


def print_report(header: list[str], args: argparse.Namespace, report: Report, elapsed: float) -> None:
    print()
    print("tiermem engine benchmark")
    for line in header:
        print(line)
    print(f"workload: {args.agents:,} agents x {args.steps:,} steps = {args.agents * args.steps:,} states, "
          f"seed {args.seed}; STM limit {args.stm_limit:,}, IM limit {args.im_limit:,}; {WINDOW}-step windows, "
          f"cache cleared before every query")
    print()
    name_w = max(len(r[0]) for r in report.latency)
    print(f"{'latency (ms)':<{name_w}}  {'p50':>8} {'p90':>8} {'p99':>8} {'n':>6}   {'target p50':<10} status")
    for name, s, target, status in report.latency:
        print(f"{name:<{name_w}}  {s['p50']:8.3f} {s['p90']:8.3f} {s['p99']:8.3f} {s['n']:6d}   {target:<10} {status}")
    print()
    name_w = max(len(r[0]) for r in report.figures)
    print(f"{'throughput and size':<{name_w}}  {'value':>10}   {'target':<10} status")
    for name, value, target, status in report.figures:
        print(f"{name:<{name_w}}  {value:>10}   {target:<10} {status}")
    print()
    for note in report.notes:
        print(f"- {note}")
    print(f"- total run time {elapsed:.0f} s; 1-minute load average at the end {os.getloadavg()[0]:.2f}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="Redis to use (nothing is flushed)")
    parser.add_argument("--agents", type=int, default=100, help="simulated agents (default 100)")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per agent (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="a small run: 10 agents x 2,000 steps")
    parser.add_argument("--batch", type=int, default=1000, help="states per store_many call / raw pipeline")
    parser.add_argument("--single-calls", type=int, default=3000, help="store_agent_state calls to time")
    parser.add_argument("--queries", type=int, default=1000, help="time-range queries per phase")
    parser.add_argument("--attr-queries", type=int, default=20, help="attribute queries per phase")
    parser.add_argument("--stm-limit", type=int, help="STM memory_limit per agent (default: 10%% of --steps)")
    parser.add_argument("--im-limit", type=int, help="IM memory_limit per agent (default: 40%% of --steps)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.steps = 10, 2000
    if args.agents < 1 or args.steps < 2 * WINDOW:
        parser.error(f"need at least 1 agent and {2 * WINDOW} steps")
    args.stm_limit = args.stm_limit or max(1, round(args.steps * STM_SHARE))
    args.im_limit = args.im_limit or max(1, round(args.steps * IM_SHARE))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    client = redis.Redis.from_url(args.redis_url)
    client.ping()
    root = f"tmbench-{os.getpid()}-{secrets.token_hex(3)}"
    header = machine_info(client)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="tiermem-bench-") as tmp:
            report = run(args, client, root, tmp)
    finally:
        progress(f"deleted {delete_prefix(client, root):,} keys under {root}*")
        client.close()
    print_report(header, args, report, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
