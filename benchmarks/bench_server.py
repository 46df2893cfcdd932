"""tiermem's REST server under load: what HTTP adds to a store, a time range and a search.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_server.py --quick     # 300 calls a workload, ~30 s
    .venv/bin/python benchmarks/bench_server.py             # 2,000 calls a workload, ~2 minutes

A standalone script, not a test. It starts this repository's server (``python -m memory.cli
serve``, i.e. ``tiermem serve``) on a free loopback port, against a key prefix of its own on the
real Redis and a SQLite LTM in a scratch directory, and stores --agents x --steps simulation
states there through an engine of its own in this process (one deployment, two processes;
maintenance spreads them over the tiers). This process is the client: one ``httpx.Client``
(keep-alive) makes each call over HTTP, and the engine in this process makes the call the route
makes, in turns, so both sides run under the same load:

  store        POST /v1/agents/{a}/memories            store_many([record]) (the route's call); agents of each side's own
  time range   GET /v1/agents/{a}/memories?start_step=s&end_step=s+99   retrieve_by_time_range(a, s, s+99, limit=101)
  search       POST /v1/agents/{a}/search {"attributes": {"goal": g, "inventory.wood": w},
               "start_step": s, "end_step": s+999, "limit": 10}   query(a).between(...).where(...).top(11)
  baseline     GET /v1/health: the HTTP round trip alone (client, server, FastAPI; no engine call)

Every time range and search asks a window no call before it asked, so neither side's result
cache answers; each agent's indices are built before the timing (one search per agent and side).
Each workload stops at --calls calls per side or --seconds, whichever comes first, after --warmup
untimed calls. Printed: p50 / p90 / p99 ms and calls/s of each side, the server's added p50
(HTTP minus in process; target for a store: <= 1 ms), and the store throughput of --clients
threads with a keep-alive client each for --seconds. Nothing is flushed: the prefix is deleted
at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import delete_prefix  # noqa: E402
from bench_transfer import GOALS, state  # noqa: E402
from memory import AgentMemoryAPI, MemoryConfig  # noqa: E402

STORE_TARGET_MS = 1.0
WINDOW, SEARCH_WINDOW = 100, 1000


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return pick(0.50), pick(0.90), pick(0.99)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``tiermem serve`` in a subprocess, its output in a log file."""

    def __init__(self, args: argparse.Namespace, prefix: str, data_dir: str, log_path: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "memory.cli", "--redis-url", args.redis_url, "--prefix", prefix,
                   "--data-dir", data_dir, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited ({self.process.returncode}):\n{Path(self.log_path).read_text()}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"the server did not answer within {seconds:.0f} s:\n{Path(self.log_path).read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def interleaved(http: Callable[[int], Any], local: Callable[[int], Any], args: argparse.Namespace,
                start: int = 0) -> tuple[list[float], list[float]]:
    """Call ``local(i)`` and ``http(i)`` in turns, timing each; --warmup untimed turns first."""
    for i in range(start, start + args.warmup):
        local(i)
        http(i)
    samples: dict[str, list[float]] = {"http": [], "local": []}
    deadline = time.monotonic() + args.seconds
    i = start + args.warmup
    while len(samples["http"]) < args.calls and time.monotonic() < deadline:
        for side, call in (("local", local), ("http", http)) if i % 2 else (("http", http), ("local", local)):
            began = time.perf_counter()
            call(i)
            samples[side].append(time.perf_counter() - began)
        i += 1
    return samples["http"], samples["local"]


def checked(response: httpx.Response, status: int = 200) -> httpx.Response:
    if response.status_code != status:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:300]}")
    return response


def throughput(server: Server, args: argparse.Namespace, rng_seed: int) -> tuple[int, float]:
    """Stores by --clients threads, a keep-alive client each, for --seconds: (calls, seconds)."""
    counts = [0] * args.clients
    start = threading.Barrier(args.clients + 1)
    stop = threading.Event()

    def client(n: int) -> None:
        rng = random.Random(rng_seed + n)
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            checked(http.get("/v1/health"))
            start.wait()
            step = 0
            while not stop.is_set():
                checked(http.post(f"/v1/agents/load-{n}/memories",
                                  json={"memory_type": "state", "data": state(rng, step), "step_number": step}), 201)
                step += 1
                counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began


def row(name: str, http: list[float], local: list[float] | None, target: str = "") -> str:
    h50, h90, h99 = percentiles(http)
    out = f"{name:<12}{'http':<12}{h50:>8.3f}{h90:>8.3f}{h99:>8.3f}{len(http) / sum(http):>10,.0f}"
    if local is None:
        return out
    l50, l90, l99 = percentiles(local)
    out += f"\n{'':<12}{'in process':<12}{l50:>8.3f}{l90:>8.3f}{l99:>8.3f}{len(local) / sum(local):>10,.0f}"
    return out + f"\n{'':<12}{'added p50':<12}{h50 - l50:>8.3f}{'':>26}{target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5000, help="states stored per agent before the queries")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per side and workload")
    parser.add_argument("--seconds", type=float, default=30.0, help="at most this long per workload")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4, help="client threads for the throughput")
    parser.add_argument("--quick", action="store_true", help="3 agents x 2,000 steps, 300 calls, 10 s")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.steps, args.calls, args.seconds = 3, 2000, 300, 10.0
    agents = [f"agent-{i:03d}" for i in range(args.agents)]
    prefix = f"tmserve-{os.getpid()}-{secrets.token_hex(3)}"
    rng = random.Random(args.seed)
    print("tiermem REST server benchmark")
    print(f"python {sys.version.split()[0]}; httpx {httpx.__version__}; redis-py {redis.__version__}; "
          f"nproc {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} at the start; {args.redis_url}; LTM SQLite")
    print(f"{args.agents} agents x {args.steps:,} states stored; up to {args.calls:,} timed calls per side and "
          f"workload (at most {args.seconds:.0f} s) after {args.warmup} warm-up calls; one keep-alive client, "
          "each HTTP call beside the engine call in this process")
    with tempfile.TemporaryDirectory(prefix="tiermem-serve-") as scratch:
        data_dir = os.path.join(scratch, "data")
        engine = AgentMemoryAPI(MemoryConfig(redis_url=args.redis_url, key_prefix=prefix, data_dir=data_dir))
        server = None
        try:
            for step in range(0, args.steps, 100):
                engine.store_many([{"agent_id": agent, "step_number": s, "data": state(rng, s),
                                    "priority": round(rng.random(), 2)}
                                   for agent in agents for s in range(step, min(step + 100, args.steps))])
            engine.force_memory_maintenance()
            tiers = {name: held["count"] for name, held in engine.get_memory_statistics()["tiers"].items()}
            print(f"tiers after maintenance: STM {tiers['stm']:,}, IM {tiers['im']:,}, LTM {tiers['ltm']:,}")
            server = Server(args, prefix, data_dir, os.path.join(scratch, "server.log"))
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=30.0) as http:
                figures = run(http, engine, agents, args)
            calls, seconds = throughput(server, args, args.seed)
            metrics_text = checked(httpx.get(server.url + "/metrics", timeout=30.0)).text
        finally:
            if server is not None:
                server.stop()
            for agent in engine.list_agents():
                engine.clear_agent_memory(agent)
            engine.close()
            client = redis.Redis.from_url(args.redis_url)
            delete_prefix(client, prefix)
            client.close()
    print(f"\n{'workload':<12}{'side':<12}{'p50 ms':>8}{'p90':>8}{'p99':>8}{'calls/s':>10}")
    added = percentiles(figures["store"][0])[0] - percentiles(figures["store"][1])[0]
    verdict = f"target <= {STORE_TARGET_MS:.1f} ms: {'met' if added <= STORE_TARGET_MS else 'NOT met'}"
    print(row("store", *figures["store"], target=verdict))
    print(row("time range", *figures["time range"]))
    print(row("search", *figures["search"]))
    print(row("baseline", figures["health"][0], None) + "   GET /v1/health: the HTTP round trip alone")
    print(f"\nstore throughput, {args.clients} client threads (keep-alive) for {seconds:.0f} s: "
          f"{calls / seconds:,.0f} requests/s ({calls:,} stores)")
    served = [line for line in metrics_text.splitlines() if line.startswith("tiermem_requests_total")
              and 'status="201"' in line]
    print("the server's own count (/metrics): " + "; ".join(served))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if added <= STORE_TARGET_MS else 1


def run(http: httpx.Client, engine: AgentMemoryAPI, agents: list[str], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    figures: dict[str, Any] = {}

    def store_http(i: int) -> None:
        checked(http.post(f"/v1/agents/http-{i % args.agents}/memories",
                          json={"memory_type": "state", "data": state(rng, i), "step_number": i}), 201)

    def store_local(i: int) -> None:
        engine.store_many([{"agent_id": f"local-{i % args.agents}", "data": state(rng, i), "step_number": i,
                            "memory_type": "state", "priority": 1.0, "embedding": None}])

    figures["store"] = interleaved(store_http, store_local, args)

    def window(i: int) -> tuple[str, int]:
        """Call i's agent and first step: an agent's k-th window starts at k * 7919 mod the span, each once."""
        return agents[i % len(agents)], (i // len(agents) * 7919) % (args.steps - WINDOW)

    def range_http(i: int) -> None:
        agent, start = window(i)
        found = checked(http.get(f"/v1/agents/{agent}/memories",
                                 params={"start_step": start, "end_step": start + WINDOW - 1})).json()
        assert len(found["memories"]) == WINDOW

    def range_local(i: int) -> None:
        agent, start = window(i)
        assert len(engine.retrieve_by_time_range(agent, start, start + WINDOW - 1, limit=WINDOW + 1)) == WINDOW

    figures["time range"] = interleaved(range_http, range_local, args)

    def search(i: int) -> tuple[str, str, int, int]:
        k = i // len(agents)
        return agents[i % len(agents)], GOALS[k % len(GOALS)], (k // len(GOALS)) % 10, (k * 7919) % (args.steps - SEARCH_WINDOW)

    def search_body(i: int) -> dict[str, Any]:
        _, goal, wood, start = search(i)
        return {"attributes": {"goal": goal, "inventory.wood": wood}, "start_step": start,
                "end_step": start + SEARCH_WINDOW - 1, "limit": 10}

    def search_http(i: int) -> None:
        checked(http.post(f"/v1/agents/{search(i)[0]}/search", json=search_body(i)))

    def search_local(i: int) -> None:
        agent, goal, wood, start = search(i)
        engine.query(agent).between(start, start + SEARCH_WINDOW - 1).where(
            {"goal": goal, "inventory.wood": wood}).top(11)

    for i, _ in enumerate(agents):  # each agent's indices, on both sides, before the timing
        search_http(i)
        search_local(i)
    figures["search"] = interleaved(search_http, search_local, args, start=len(agents))
    figures["health"] = interleaved(lambda i: checked(http.get("/v1/health")), lambda i: None, args)
    return figures


if __name__ == "__main__":
    sys.exit(main())
