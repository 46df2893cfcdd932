"""tiermem's REST server under load: what HTTP adds to a store, a time range and a search.

Run from the repository root (a Redis must answer at --redis-url):

    .venv/bin/python benchmarks/bench_server.py --quick     # 300 calls a workload, ~1 minute
    .venv/bin/python benchmarks/bench_server.py             # 2,000 calls a workload, ~2 minutes

A standalone script, not a test. It starts this repository's server (``python -m memory.cli
serve``: ``tiermem serve``) on a free loopback port, against a key prefix of its own on the real
Redis and a SQLite LTM in a scratch directory, and stores --agents x --steps simulation states
there through an engine of its own in this process (one deployment, two processes; maintenance
spreads them over the tiers). This process is the client. Each call is made three ways in turns
(the order rotating), so all run under the same load: by the engine in this process (the call
the route makes: the baseline), and over HTTP by two keep-alive clients, Python's own
``http.client`` (light: its figures are close to what the server alone costs) and ``httpx``:

  store        POST /v1/agents/{a}/memories             store_many([record]) (the route's call), agents of each side's own
  time range   GET /v1/agents/{a}/memories?start_step=s&end_step=s+99   retrieve_by_time_range(a, s, s+99, limit=101)
  search       POST /v1/agents/{a}/search {"attributes": {"goal": g, "inventory.wood": w},
               "start_step": s, "end_step": s+999, "limit": 10}    query(a).between(...).where(...).top(11)
  baseline     GET /v1/health: the HTTP round trip alone (client, server, FastAPI; no engine call)

No two time ranges or searches ask the same window, so no result cache answers; each agent's
indices are built on both engines before the timing. Each workload stops at --calls calls per
side or --seconds, whichever comes first, after --warmup untimed calls. Printed: p50 / p90 / p99
ms and calls/s of each side, the server's added p50 (over HTTP minus in process; target for a
store, with http.client: <= 1 ms), and the store throughput of --clients threads with a
keep-alive client each, for --throughput-seconds per client kind. Nothing is flushed: the prefix
is deleted at the end. Exit status 1 when the target is not met.
"""

from __future__ import annotations

import argparse
import http.client
import json
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
from urllib.parse import urlencode

import fastapi
import httpx
import redis
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

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


class Stdlib:
    """A keep-alive connection of Python's own http.client: a client far lighter than httpx, so its
    figures are closer to what the server alone costs. Reconnects once when the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.connection = self._open()

    def _open(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        target = path + ("?" + urlencode(params) if params else "")
        data = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            try:
                self.connection.request(method, target, body=data, headers={"content-type": "application/json"})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):  # idle past the server's keep-alive
                if attempt == 2:
                    raise
                self.connection.close()
                self.connection = self._open()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


class Clients:
    """The two HTTP clients of this process, each keep-alive, both answering (status, body bytes)."""

    def __init__(self, server: Server):
        self.httpx = httpx.Client(base_url=server.url, timeout=30.0)
        self.stdlib = Stdlib(server.port)

    def side(self, name: str) -> Callable[..., tuple[int, bytes]]:
        if name == "http.client":
            return self.stdlib.call

        def call(method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
            response = self.httpx.request(method, path, json=body, params=params)
            return response.status_code, response.content

        return call

    def close(self) -> None:
        self.httpx.close()
        self.stdlib.close()


def checked(answer: tuple[int, bytes], status: int = 200) -> bytes:
    if answer[0] != status:
        raise SystemExit(f"the server answered {answer[0]}: {answer[1][:300]!r}")
    return answer[1]


def interleaved(calls: dict[str, Callable[[int], Any]], args: argparse.Namespace, start: int = 0) -> dict[str, list[float]]:
    """Call every side with i, in an order that rotates with i, timing each; --warmup untimed turns first."""
    sides = list(calls)
    for i in range(start, start + args.warmup):
        for side in sides:
            calls[side](i)
    samples: dict[str, list[float]] = {side: [] for side in sides}
    deadline = time.monotonic() + args.seconds
    i = start + args.warmup
    while len(samples[sides[0]]) < args.calls and time.monotonic() < deadline:
        turn = i % len(sides)
        for side in sides[turn:] + sides[:turn]:
            began = time.perf_counter()
            calls[side](i)
            samples[side].append(time.perf_counter() - began)
        i += 1
    return samples


def throughput(server: Server, args: argparse.Namespace, client: str) -> tuple[int, float]:
    """Stores by --clients threads, a keep-alive client each, for --throughput-seconds: (calls, seconds)."""
    counts = [0] * args.clients
    start = threading.Barrier(args.clients + 1)
    stop = threading.Event()

    def work(n: int) -> None:
        rng = random.Random(args.seed + n)
        clients = Clients(server)
        call = clients.side(client)
        try:
            checked(call("GET", "/v1/health"))
            start.wait()
            step = 0
            while not stop.is_set():
                checked(call("POST", f"/v1/agents/load-{client}-{n}/memories",
                             {"memory_type": "state", "data": state(rng, step), "step_number": step}), 201)
                step += 1
                counts[n] += 1
        finally:
            clients.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(args.throughput_seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began


SIDES = ("in process", "http.client", "httpx")


def table(name: str, figures: dict[str, list[float]], target: str = "") -> list[str]:
    lines = []
    for side in SIDES:
        if side in figures:
            p50, p90, p99 = percentiles(figures[side])
            lines.append(f"{name if not lines else '':<12}{side:<13}{p50:>8.3f}{p90:>8.3f}{p99:>8.3f}"
                         f"{len(figures[side]) / sum(figures[side]):>10,.0f}")
    if "in process" in figures:
        local = percentiles(figures["in process"])[0]
        added = ", ".join(f"{percentiles(figures[side])[0] - local:.3f} ({side})" for side in SIDES[1:])
        lines.append(f"{'':<12}added p50: {added}{'   ' + target if target else ''}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5000, help="states stored per agent before the queries")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per side and workload")
    parser.add_argument("--seconds", type=float, default=60.0, help="at most this long per workload")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4, help="client threads for the throughput")
    parser.add_argument("--throughput-seconds", type=float, default=10.0, help="per client kind")
    parser.add_argument("--quick", action="store_true", help="3 agents x 2,000 steps, 300 calls, 20 s, 5 s")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if args.quick:
        args.agents, args.steps, args.calls, args.seconds, args.throughput_seconds = 3, 2000, 300, 20.0, 5.0
    if (args.calls + args.warmup + args.agents) // args.agents > (args.steps - SEARCH_WINDOW) // len(SIDES):
        parser.error("--steps too few for --calls: some windows would be asked twice (the result cache would answer)")
    agents = [f"agent-{i:03d}" for i in range(args.agents)]
    prefix = f"tmserve-{os.getpid()}-{secrets.token_hex(3)}"
    rng = random.Random(args.seed)
    print("tiermem REST server benchmark")
    print(f"python {sys.version.split()[0]}; httpx {httpx.__version__}; fastapi {fastapi.__version__}; uvicorn "
          f"{uvicorn.__version__}; redis-py {redis.__version__}; nproc {os.cpu_count()}; load average "
          f"{os.getloadavg()[0]:.2f} at the start; {args.redis_url}; LTM SQLite")
    print(f"{args.agents} agents x {args.steps:,} states stored; up to {args.calls:,} timed calls per side and "
          f"workload (at most {args.seconds:.0f} s) after {args.warmup} warm-up calls; each call made in turns in "
          "process and over HTTP by two keep-alive clients (http.client, httpx)")
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
            clients = Clients(server)
            try:
                figures = run(clients, engine, agents, args)
                status, body = clients.side("httpx")("GET", "/metrics")
                metrics_text = body.decode() if status == 200 else ""
            finally:
                clients.close()
            rates = {client: throughput(server, args, client) for client in SIDES[1:]}
        finally:
            if server is not None:
                server.stop()
            for agent in engine.list_agents():
                engine.clear_agent_memory(agent)
            engine.close()
            client = redis.Redis.from_url(args.redis_url)
            delete_prefix(client, prefix)
            client.close()
    stores = figures["store"]
    added = percentiles(stores["http.client"])[0] - percentiles(stores["in process"])[0]
    verdict = f"target <= {STORE_TARGET_MS:.1f} ms (http.client): {'met' if added <= STORE_TARGET_MS else 'NOT met'}"
    print(f"\n{'workload':<12}{'side':<13}{'p50 ms':>8}{'p90':>8}{'p99':>8}{'calls/s':>10}")
    for line in (table("store", stores, verdict) + table("time range", figures["time range"])
                 + table("search", figures["search"]) + table("baseline", figures["health"])):
        print(line)
    print(f"{'':<12}baseline: GET /v1/health, the HTTP round trip with no engine call")
    for client, (calls, seconds) in rates.items():
        print(f"store throughput, {args.clients} threads with a keep-alive {client} client each for {seconds:.0f} s: "
              f"{calls / seconds:,.0f} requests/s ({calls:,} stores)")
    print("the server's own mean time per request, inside the app (its /metrics, before the throughput): "
          + (inside(metrics_text) or "not served (create_app does not install memory/server/metrics.py)"))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0 if added <= STORE_TARGET_MS else 1


def inside(metrics_text: str) -> str:
    """Mean seconds per request by route, from the server's tiermem_request_seconds histogram."""
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "tiermem_request_seconds":
            for sample in family.samples:
                if sample.name.endswith(("_sum", "_count")):
                    key = (sample.labels["method"], sample.labels["route"])
                    totals.setdefault(key, {})[sample.name.rsplit("_", 1)[1]] = sample.value
    return "; ".join(f"{method} {route} {1000 * t['sum'] / t['count']:.3f} ms ({t['count']:,.0f})"
                     for (method, route), t in sorted(totals.items()) if t.get("count") and "/v1/agents/" in route)


def run(clients: Clients, engine: AgentMemoryAPI, agents: list[str], args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed + 1)
    figures: dict[str, Any] = {}
    over = {side: clients.side(side) for side in SIDES[1:]}

    def fresh(i: int, side: str, span: int) -> int:
        """The first step of call i's window on its agent: each side's k-th window of an agent starts at
        (k + the side's offset) * 7919 mod the span, so no two calls ask the same (no result cache answers)."""
        k = i // len(agents) + SIDES.index(side) * (span // len(SIDES))
        return (k * 7919) % span

    def each(local: Callable[[int], Any], remote: Callable[[Callable[..., tuple[int, bytes]], str, int], Any]
             ) -> dict[str, Callable[[int], Any]]:
        calls = {"in process": local}
        for side, call in over.items():
            calls[side] = lambda i, call=call, side=side: remote(call, side, i)
        return calls

    def store_local(i: int) -> None:
        engine.store_many([{"agent_id": f"local-{i % args.agents}", "data": state(rng, i), "step_number": i,
                            "memory_type": "state", "priority": 1.0, "embedding": None}])

    def store_remote(call: Callable[..., tuple[int, bytes]], side: str, i: int) -> None:
        checked(call("POST", f"/v1/agents/{side}-{i % args.agents}/memories",
                     {"memory_type": "state", "data": state(rng, i), "step_number": i}), 201)

    figures["store"] = interleaved(each(store_local, store_remote), args)

    def window(i: int, side: str) -> tuple[str, int]:
        return agents[i % len(agents)], fresh(i, side, args.steps - WINDOW)

    def range_local(i: int) -> None:
        agent, start = window(i, "in process")
        assert len(engine.retrieve_by_time_range(agent, start, start + WINDOW - 1, limit=WINDOW + 1)) == WINDOW

    def range_remote(call: Callable[..., tuple[int, bytes]], side: str, i: int) -> None:
        agent, start = window(i, side)
        found = json.loads(checked(call("GET", f"/v1/agents/{agent}/memories",
                                        params={"start_step": start, "end_step": start + WINDOW - 1})))
        assert len(found["memories"]) == WINDOW

    figures["time range"] = interleaved(each(range_local, range_remote), args)

    def search(i: int, side: str) -> tuple[str, dict[str, Any], int]:
        k = i // len(agents)
        where = {"goal": GOALS[k % len(GOALS)], "inventory.wood": (k // len(GOALS)) % 10}
        return agents[i % len(agents)], where, fresh(i, side, args.steps - SEARCH_WINDOW)

    def search_local(i: int) -> None:
        agent, where, start = search(i, "in process")
        engine.query(agent).between(start, start + SEARCH_WINDOW - 1).where(where).top(11)

    def search_remote(call: Callable[..., tuple[int, bytes]], side: str, i: int) -> None:
        agent, where, start = search(i, side)
        checked(call("POST", f"/v1/agents/{agent}/search", {"attributes": where, "start_step": start,
                                                            "end_step": start + SEARCH_WINDOW - 1, "limit": 10}))

    searches = each(search_local, search_remote)
    for i, _ in enumerate(agents):  # each agent's indices, on both sides, before the timing
        for call in searches.values():
            call(i)
    figures["search"] = interleaved(searches, args, start=len(agents))
    figures["health"] = interleaved({side: lambda i, call=call: checked(call("GET", "/v1/health"))
                                     for side, call in over.items()}, args)
    return figures


if __name__ == "__main__":
    sys.exit(main())
