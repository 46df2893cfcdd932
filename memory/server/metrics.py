"""Prometheus metrics of the server: its requests, and the engine's tiers, maintenance and cache.

``install(app, engine)`` adds a middleware that counts and times every HTTP request and the
``GET /metrics`` route that exposes the figures as Prometheus text (or OpenMetrics, as the
scraper's ``Accept`` asks). Each :class:`Metrics` holds a registry of its own, never
prometheus-client's global one, so two apps in one process keep their figures apart.

Requests (the middleware; ``route`` is the route's template, ``/v1/agents/{agent_id}/memories``,
never the raw path, so agents do not multiply the series; paths no route knows share the label
``unmatched``, methods beyond the standard ones ``other``):

    tiermem_requests_total{route,method,status}   counter
    tiermem_request_seconds{route,method}          histogram, from the request's first byte in to its last byte out
    tiermem_requests_in_progress                   gauge

The engine, read at scrape time (:class:`EngineCollector`). In-process figures
(``AgentMemoryAPI.get_process_statistics``: no round trip) are read at every scrape:

    tiermem_cache_hits_total, tiermem_cache_misses_total, tiermem_cache_hit_ratio, tiermem_cache_entries
    tiermem_maintenance_runs_total, tiermem_maintenance_failed_runs_total
    tiermem_maintenance_moves_total{direction}     stm_to_im, im_to_ltm, ltm_to_im
    tiermem_maintenance_healed_total, tiermem_maintenance_seconds_total
    tiermem_index_bytes, tiermem_index_agents, tiermem_index_evictions_total
    tiermem_engine_info{mode,key_prefix}

The sizes come from ``get_memory_statistics()``, which reads every memory's size (a Lua pass over
each agent's Redis tiers and a SQL aggregate over LTM: about a second at 1,000,000 memories), so
they are kept for ``statistics_ttl`` seconds; a scrape that finds them older gets the kept figures
and starts a thread that gathers new ones (only the first scrape waits for them):

    tiermem_agents, tiermem_memories{tier}, tiermem_memory_bytes{tier}, tiermem_memories_by_type{memory_type}
    tiermem_statistics_age_seconds, tiermem_statistics_gather_seconds, tiermem_statistics_errors_total
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from memory.server.bearer import ASGIApp, Receive, Scope, Send
from tiers.errors import MemoryAPIException

log = logging.getLogger(__name__)

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# from a quarter of a millisecond (a store) to ten seconds (a first query building its indices)
BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TIERS = ("stm", "im", "ltm")
MOUNTED_ROUTES = 1024  # the most (route, mount) pairs RouteTemplates keeps
DIRECTIONS = ("stm_to_im", "im_to_ltm", "ltm_to_im")


class Metrics:
    """The figures of one app: request metrics it is told of, the engine's read when scraped."""

    def __init__(self, engine: Any, *, statistics_ttl: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.registry = CollectorRegistry()
        self.requests = Counter("tiermem_requests", "HTTP requests answered, by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("tiermem_request_seconds", "HTTP request duration, by route template and method",
                                 ["route", "method"], buckets=BUCKETS, registry=self.registry)
        self.in_progress = Gauge("tiermem_requests_in_progress", "HTTP requests being answered",
                                 registry=self.registry)
        self.engine = EngineCollector(engine, statistics_ttl, clock)
        self.registry.register(self.engine)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def exposition(self, accept: str | None = None, accept_encoding: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The scrape's body and headers: the format ``accept`` asks for, gzipped when accepted."""
        encoder, content_type = choose_encoder(accept or "")
        body, headers = encoder(self.registry), {"Content-Type": content_type}
        if gzip_accepted(accept_encoding or ""):
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        return body, headers

    def endpoint(self, request: Request) -> Response:
        """``GET /metrics`` (a plain function: FastAPI runs it in its thread pool, so a first scrape
        that gathers the engine's statistics does not hold up the event loop)."""
        body, headers = self.exposition(request.headers.get("accept"), request.headers.get("accept-encoding"))
        return Response(body, headers=headers)


def install(app: Any, engine: Any, *, statistics_ttl: float = 30.0) -> Metrics:
    """Count and time every request of ``app`` and serve ``GET /metrics``. Call it after adding the
    bearer middleware, so requests it refuses are counted too."""
    metrics = Metrics(engine, statistics_ttl=statistics_ttl)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app.router.routes)
    app.add_api_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    app.state.metrics = metrics
    return metrics


# -- requests ----------------------------------------------------------------------------------------
class RouteTemplates:
    """The templates of an app's routes as FastAPI resolves them (the prefixes of included routers
    added: ``fastapi.routing.iter_route_contexts``), and which one a request reached."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes  # the app's own list, so routes added after install are known too
        self._seen = -1
        self._contexts: list[Any] = []
        self._by_route: dict[int, str] = {}  # id of a route object -> its one template
        self._ambiguous: set[int] = set()  # route objects under several templates (a router included twice)
        self._mounted: dict[tuple[int, str], str] = {}  # (a mounted app's route, root path) -> its mount

    def _refresh(self) -> None:
        if self._seen == len(self.routes):
            return
        contexts = list(iter_route_contexts(self.routes))
        templates: dict[int, set[str]] = {}
        for context in contexts:
            templates.setdefault(id(context.original_route), set()).add(context.path or UNMATCHED)
        # a router included twice has two templates for one route object: those are matched instead
        self._by_route = {key: next(iter(paths)) for key, paths in templates.items() if len(paths) == 1}
        self._ambiguous = {key for key, paths in templates.items() if len(paths) > 1}
        self._contexts, self._seen, self._mounted = contexts, len(self.routes), {}

    def of(self, scope: Scope, arrived: Scope) -> str:
        """The template of the route that answered ``scope`` (``arrived``: the scope as it came in)."""
        self._refresh()
        route = scope.get("route")
        if route is None:
            return self.match(arrived)[0]
        template = self._by_route.get(id(route))
        if template is not None:
            return template
        if id(route) in self._ambiguous:
            return self.match(arrived)[0]
        # a mounted app's own route: its mount, learned once per route and mount (the root path)
        key = (id(route), scope.get("root_path", ""))
        template = self._mounted.get(key)
        if template is None:
            template = self.match(arrived)[0]
            if len(self._mounted) < MOUNTED_ROUTES:
                self._mounted[key] = template
        return template

    def match(self, arrived: Scope) -> tuple[str, dict[str, Any]]:
        """The template and path parameters of the route ``arrived`` reaches: for a request refused
        before routing (401), a mounted app's own route (``/mcp``), or ``unmatched``."""
        self._refresh()
        partial: tuple[str, dict[str, Any]] | None = None
        for context in self._contexts:
            match, child = context.matches(arrived)
            if match is Match.FULL:
                return context.path or UNMATCHED, child.get("path_params", {})
            if match is Match.PARTIAL and partial is None:  # the path with another method: a 405
                partial = context.path or UNMATCHED, child.get("path_params", {})
        return partial or (UNMATCHED, {})


def arrival(scope: Scope) -> Scope:
    """What routing reads of a request, before routing changes the scope."""
    return {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "method": scope["method"]}


class RequestMetrics:
    """Pure ASGI middleware: counts and times each HTTP request by its route's template."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        arrived = arrival(scope)
        status = 500  # what the server answers when the app raises before it responds

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.observe(self.templates.of(scope, arrived), scope["method"], status,
                                 time.perf_counter() - started)


# -- the engine ----------------------------------------------------------------------------------------
class EngineCollector:
    """A prometheus-client collector reading the engine when scraped (see the module's doc)."""

    def __init__(self, engine: Any, statistics_ttl: float, clock: Callable[[], float] = time.monotonic):
        if not statistics_ttl >= 0:
            raise ValueError(f"statistics_ttl must be a number of seconds >= 0, got {statistics_ttl!r}")
        self.engine = engine
        self.statistics_ttl = statistics_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._statistics: dict[str, Any] | None = None
        self._taken = 0.0
        self._gather_seconds = 0.0
        self._gathering = False
        self._errors = 0

    # -- the kept statistics ------------------------------------------------------------------------
    def statistics(self) -> tuple[dict[str, Any] | None, float]:
        """The kept ``get_memory_statistics()`` (None: no gathering succeeded yet) and its age in
        seconds, starting a new gather when
        they are older than the TTL (waiting for it only when none was kept yet)."""
        with self._lock:
            kept, taken, now = self._statistics, self._taken, self.clock()
            start = not self._gathering and (kept is None or now - taken >= self.statistics_ttl)
            self._gathering = self._gathering or start
        if start and kept is None:
            self._gather()
            with self._lock:
                return self._statistics, self.clock() - self._taken
        if start:
            threading.Thread(target=self._gather, name="tiermem-metrics-statistics", daemon=True).start()
        return kept, now - taken

    def _gather(self) -> None:
        started = time.perf_counter()
        try:
            statistics = self.engine.get_memory_statistics()
        except MemoryAPIException as exc:  # Redis or SQL not answering, the engine closed: keep the last
            log.warning("metrics could not gather the engine's statistics: %s", exc)
            with self._lock:
                self._errors += 1
            return
        finally:
            with self._lock:
                self._gathering = False
        with self._lock:
            self._statistics, self._taken = statistics, self.clock()
            self._gather_seconds = time.perf_counter() - started

    # -- the collector --------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        yield from self._process_figures(self.engine.get_process_statistics())
        statistics, age = self.statistics()
        with self._lock:
            gather_seconds, errors = self._gather_seconds, self._errors
        yield _gauge("tiermem_statistics_gather_seconds", "How long the last gathering of tier statistics took",
                     gather_seconds)
        yield _counter("tiermem_statistics_errors", "Gatherings of tier statistics that failed", errors)
        if statistics is not None:
            yield _gauge("tiermem_statistics_age_seconds", "Age of the tier statistics exposed", age)
            yield from self._sizes(statistics)

    def _process_figures(self, figures: dict[str, Any]) -> Iterator[Metric]:
        cache, indices, maintenance = figures["cache"], figures["indices"], figures["maintenance"]
        info = InfoMetricFamily("tiermem_engine", "The engine behind the server")
        info.add_metric([], {"mode": figures["mode"], "key_prefix": self.engine.config.key_prefix})
        yield info
        yield _counter("tiermem_cache_hits", "Queries answered from the result cache", cache["hits"])
        yield _counter("tiermem_cache_misses", "Queries the result cache could not answer", cache["misses"])
        yield _gauge("tiermem_cache_hit_ratio", "Hits over lookups of the result cache since the engine opened",
                     cache["hit_rate"])
        yield _gauge("tiermem_cache_entries", "Answers held in the result cache", cache["size"])
        yield _counter("tiermem_maintenance_runs", "Maintenance runs, forced and automatic", maintenance["runs"])
        yield _counter("tiermem_maintenance_failed_runs", "Maintenance runs stopped by an error", maintenance["failed"])
        moves = CounterMetricFamily("tiermem_maintenance_moves", "Memories maintenance moved between tiers",
                                    labels=["direction"])
        for direction in DIRECTIONS:
            moves.add_metric([direction], maintenance[direction])
        yield moves
        yield _counter("tiermem_maintenance_healed", "Interrupted moves maintenance finished", maintenance["healed"])
        yield _counter("tiermem_maintenance_seconds", "Time spent in maintenance runs", maintenance["seconds"])
        yield _gauge("tiermem_index_bytes", "Estimated bytes of this process's search indices", indices["bytes"])
        yield _gauge("tiermem_index_agents", "Agents whose search indices this process holds", indices["agents"])
        yield _counter("tiermem_index_evictions", "Agents' indices dropped to keep within the budget",
                       indices["evicted"])

    @staticmethod
    def _sizes(statistics: dict[str, Any]) -> Iterator[Metric]:
        yield _gauge("tiermem_agents", "Agents holding memories", statistics["agents"])
        count = GaugeMetricFamily("tiermem_memories", "Memories held, by tier", labels=["tier"])
        size = GaugeMetricFamily("tiermem_memory_bytes", "Stored payload bytes, by tier", labels=["tier"])
        for tier in TIERS:
            count.add_metric([tier], statistics["tiers"][tier]["count"])
            size.add_metric([tier], statistics["tiers"][tier]["bytes"])
        yield count
        yield size
        types = GaugeMetricFamily("tiermem_memories_by_type", "Memories held, by type", labels=["memory_type"])
        for memory_type, n in statistics["memory_type_distribution"].items():
            types.add_metric([memory_type], n)
        yield types


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)

