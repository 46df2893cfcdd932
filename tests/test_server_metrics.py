"""The server's observability (memory/server/metrics.py, tracing.py): /metrics counts and times
requests by route template and reads the engine's tiers, maintenance and cache when scraped;
traces are FastAPI's request spans with tiermem's attributes when OTEL_* asks for them, nothing
otherwise. On the embedded engine, the sizes also on the real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from memory.server import metrics, tracing
from memory.server.auth import TokenTable
from memory.server.bearer import BearerAuth

ROOT = Path(__file__).resolve().parent.parent
STORE = "/v1/agents/{agent_id}/memories"
SMALL_TIERS = {"stm_config": {"memory_limit": 5}, "im_config": {"memory_limit": 5, "low_watermark": 1.0},
               "ltm_config": {"dictionary_samples": 5}, "cleanup_interval": 10**6}
embedded = pytest.mark.parametrize("redis_engine", ["embedded"])


def build_app(engine: Any, *, tokens: TokenTable | None = None, telemetry: dict[str, Any] | None = None,
              statistics_ttl: float = 30.0) -> FastAPI:
    """A few routes of the REST API's shape, wired as create_app wires the real ones."""
    app = FastAPI(telemetry=telemetry or {})
    routes = APIRouter(prefix="/v1")

    @routes.post("/agents/{agent_id}/memories", status_code=201)
    def store(agent_id: str, body: dict[str, Any]) -> dict[str, str]:
        return {"memory_id": engine.store_agent_state(agent_id, body["data"], body["step_number"])}

    @routes.get("/agents/{agent_id}/memories")
    def window(agent_id: str, start_step: int, end_step: int) -> dict[str, Any]:
        return {"memories": list(engine.retrieve_by_time_range(agent_id, start_step, end_step))}

    app.include_router(routes)
    app.include_router(routes, prefix="/old")  # one route object under two templates
    app.mount("/mcp", Starlette(routes=[Route("/", lambda request: PlainTextResponse("mcp"), methods=["POST"])]))
    if tokens is not None:
        app.add_middleware(BearerAuth, tokens=tokens, public=("/v1/health",))
    metrics.install(app, engine, statistics_ttl=statistics_ttl)
    tracing.install(app, telemetry or {})
    return app


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(figures: dict, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


def store(client: TestClient, agent: str, step: int, **headers: str) -> Any:
    return client.post(f"/v1/agents/{agent}/memories", json={"data": {"step": step}, "step_number": step},
                       headers=headers)


# -- requests --------------------------------------------------------------------------------------------
@embedded
def test_requests_are_counted_and_timed_by_their_route_template(make_api):
    with TestClient(build_app(make_api())) as client:
        for step in range(3):
            assert store(client, f"agent-{step}", step).status_code == 201
        assert client.get("/v1/agents/agent-1/memories", params={"start_step": 0, "end_step": 9}).status_code == 200
        assert client.get("/v1/agents/agent-1/memories", params={"start_step": "x", "end_step": 9}).status_code == 422
        assert client.get("/no/such/path").status_code == 404
        assert client.delete("/v1/agents/agent-1/memories").status_code == 405
        assert store(client, "agent-1", 4).status_code == 201 and client.post("/old/v1/agents/a/memories").status_code == 422
        assert client.post("/mcp/").text == client.post("/mcp/").text == "mcp"  # the second from what the first learned
        figures = scrape(client)
    assert value(figures, "tiermem_requests_total", route=STORE, method="POST", status="201") == 4
    assert value(figures, "tiermem_request_seconds_count", route=STORE, method="POST") == 4
    assert value(figures, "tiermem_request_seconds_bucket", route=STORE, method="POST", le="10.0") == 4
    assert value(figures, "tiermem_request_seconds_sum", route=STORE, method="POST") > 0
    assert value(figures, "tiermem_requests_total", route=STORE, method="GET", status="200") == 1
    assert value(figures, "tiermem_requests_total", route=STORE, method="GET", status="422") == 1
    assert value(figures, "tiermem_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(figures, "tiermem_requests_total", route=STORE, method="DELETE", status="405") == 1
    assert value(figures, "tiermem_requests_total", route="/old" + STORE, method="POST", status="422") == 1
    assert value(figures, "tiermem_requests_total", route="/mcp", method="POST", status="200") == 2
    assert not [key for key in figures if any("agent-1" in label for _, label in key[1])]  # no raw paths
    assert value(figures, "tiermem_requests_in_progress") == 1  # the scrape itself


@embedded
def test_requests_the_bearer_middleware_refuses_are_counted_under_their_route(make_api):
    tokens = TokenTable.parse([{"token": "writer-token", "tier": "contributor"}], "test")
    with TestClient(build_app(make_api(), tokens=tokens)) as client:
        assert store(client, "a", 1).status_code == 401
        assert store(client, "a", 2, authorization="Bearer writer-token").status_code == 201
        assert client.get("/metrics").status_code == 401
        figures = scrape(client, authorization="Bearer writer-token")
    assert value(figures, "tiermem_requests_total", route=STORE, method="POST", status="401") == 1
    assert value(figures, "tiermem_requests_total", route=STORE, method="POST", status="201") == 1
    assert value(figures, "tiermem_requests_total", route="/metrics", method="GET", status="401") == 1


@embedded
def test_two_apps_in_one_process_keep_their_figures_apart(make_api):
    engine = make_api()
    with TestClient(build_app(engine)) as first, TestClient(build_app(engine)) as second:
        store(first, "a", 1)
        assert value(scrape(first), "tiermem_requests_total", route=STORE, method="POST", status="201") == 1
        assert value(scrape(second), "tiermem_requests_total", route=STORE, method="POST", status="201") == 0
    assert b"tiermem_" not in prometheus_client.generate_latest()  # nothing in the library's global registry


@embedded
def test_a_scraper_asking_for_openmetrics_gets_it(make_api):
    with TestClient(build_app(make_api())) as client:
        response = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n") and "tiermem_maintenance_moves_total" in response.text


# -- the engine ------------------------------------------------------------------------------------------
def test_tier_sizes_match_get_memory_statistics_and_moves_follow_maintenance(make_api):
    engine = make_api(**SMALL_TIERS)
    with TestClient(build_app(engine, statistics_ttl=0)) as client:
        for step in range(30):
            store(client, "a", step)
        before = scrape(client)
        assert sum(value(before, "tiermem_maintenance_moves_total", direction=d) for d in metrics.DIRECTIONS) == 0
        report = engine.force_memory_maintenance()
        expected = engine.get_memory_statistics()
        after = wait_for(client, lambda figures: value(figures, "tiermem_memories", tier="ltm") == 20)
    assert {tier: value(after, "tiermem_memories", tier=tier) for tier in metrics.TIERS} == {
        tier: expected["tiers"][tier]["count"] for tier in metrics.TIERS} == {"stm": 5, "im": 5, "ltm": 20}
    for tier in metrics.TIERS:
        assert value(after, "tiermem_memory_bytes", tier=tier) == expected["tiers"][tier]["bytes"] > 0
    assert value(after, "tiermem_agents") == 1
    assert value(after, "tiermem_memories_by_type", memory_type="state") == 30
    assert value(after, "tiermem_maintenance_moves_total", direction="stm_to_im") == report.stm_to_im == 25
    assert value(after, "tiermem_maintenance_moves_total", direction="im_to_ltm") == report.im_to_ltm == 20
    assert value(after, "tiermem_maintenance_runs_total") == 1
    assert value(after, "tiermem_engine_info", mode=engine.mode, key_prefix=engine.config.key_prefix) == 1


def wait_for(client: TestClient, done: Any, seconds: float = 10.0) -> dict:
    """Scrape until ``done(figures)``: a scrape that finds the sizes stale gathers new ones in a thread."""
    deadline = time.monotonic() + seconds
    figures = scrape(client)
    while not done(figures) and time.monotonic() < deadline:
        time.sleep(0.02)
        figures = scrape(client)
    return figures


@embedded
def test_the_cache_hit_rate_moves_with_repeated_queries(make_api):
    with TestClient(build_app(make_api())) as client:
        store(client, "a", 1)
        window = {"start_step": 0, "end_step": 5}
        client.get("/v1/agents/a/memories", params=window)
        first = scrape(client)
        client.get("/v1/agents/a/memories", params=window)
        client.get("/v1/agents/a/memories", params=window)
        second = scrape(client)
    assert (value(first, "tiermem_cache_hits_total"), value(first, "tiermem_cache_misses_total")) == (0, 1)
    assert value(first, "tiermem_cache_hit_ratio") == 0.0
    assert (value(second, "tiermem_cache_hits_total"), value(second, "tiermem_cache_misses_total")) == (2, 1)
    assert value(second, "tiermem_cache_hit_ratio") == pytest.approx(2 / 3)


@embedded
def test_stale_sizes_are_served_while_a_thread_gathers_new_ones(make_api, clock):
    engine = make_api()
    collector = metrics.EngineCollector(engine, statistics_ttl=10, clock=clock)
    engine.store_agent_state("a", {"x": 1}, 1)
    assert collector.statistics()[0]["total_memories"] == 1  # the first is gathered in the scrape
    engine.store_agent_state("a", {"x": 2}, 2)
    clock.advance(9)
    assert collector.statistics() == (collector.statistics()[0], 9) and collector.statistics()[0]["total_memories"] == 1
    clock.advance(2)
    statistics, age = collector.statistics()  # stale: served, and a thread starts gathering
    assert (statistics["total_memories"], age) == (1, 11)
    deadline = time.monotonic() + 10
    while collector.statistics()[0]["total_memories"] == 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert collector.statistics() == (collector.statistics()[0], 0) and collector.statistics()[0]["total_memories"] == 2


@embedded
def test_sizes_that_cannot_be_gathered_are_counted_and_the_scrape_still_answers(make_api):
    engine = make_api()
    app = build_app(engine)
    engine.close()
    with TestClient(app) as client:
        figures = scrape(client)
    assert value(figures, "tiermem_statistics_errors_total") == 1
    assert ("tiermem_memories", (("tier", "stm"),)) not in figures
    assert value(figures, "tiermem_cache_misses_total") == 0  # the in-process figures still answer


# -- traces ------------------------------------------------------------------------------------------------
def test_without_otel_variables_tracing_imports_nothing_and_adds_nothing():
    code = ("import sys, json; from fastapi import FastAPI; from memory.server import tracing; app = FastAPI(); "
            "before = set(sys.modules); settings = tracing.telemetry(); added = tracing.install(app, settings); "
            "print(json.dumps([settings, added, len(app.user_middleware), sorted(set(sys.modules) - before)]))")
    environ = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == [{}, False, 0, []]


@pytest.mark.parametrize("environ, names", [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp_proto_http"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     ["otlp_proto_grpc"]),
    ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp_proto_http"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, []),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, []),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, []),
])
def test_the_otel_variables_choose_the_exporters(environ, names):
    assert tracing.exporter_names(environ) == names


def test_an_exporter_that_is_not_installed_is_said_and_traces_nothing(caplog):
    assert tracing.telemetry({"OTEL_TRACES_EXPORTER": "no_such_exporter"}) == {}
    assert "no span exporter 'no_such_exporter' is installed" in caplog.text


@embedded
def test_configured_traces_have_a_span_per_request_with_route_status_agent_and_caller(make_api, monkeypatch):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    settings = tracing.telemetry({"OTEL_TRACES_EXPORTER": "console"})  # a provider: the console exporter loaded
    provider = settings["tracer_provider"]
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tokens = TokenTable.parse([{"token": "scout-token", "tier": "contributor", "agent": "scout-1"}], "test")
    try:
        with TestClient(build_app(make_api(), tokens=tokens, telemetry=settings)) as client:
            assert store(client, "scout-1", 7, authorization="Bearer scout-token").status_code == 201
            assert store(client, "scout-1", 8).status_code == 401
        provider.force_flush()
    finally:
        provider.shutdown()
    requests = [span for span in spans.get_finished_spans() if span.kind.name == "SERVER"]
    assert [(span.name, span.attributes["http.route"], span.attributes["http.response.status_code"])
            for span in requests] == [("POST " + STORE, STORE, 201), ("POST " + STORE, STORE, 401)]
    stored, refused = (dict(span.attributes) for span in requests)
    assert (stored["tiermem.agent_id"], stored["tiermem.caller"], stored["tiermem.access_tier"]) == (
        "scout-1", "scout-1", "contributor")
    assert "tiermem.caller" not in refused
    assert requests[0].resource.attributes["service.name"] == "tiermem"
