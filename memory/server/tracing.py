"""OpenTelemetry traces of the server, when they are asked for; nothing at all otherwise.

FastAPI itself makes a span per request (``POST /v1/agents/{agent_id}/memories``, with
``http.route``, ``http.response.status_code`` and an error status for a 5xx), and a span for the
endpoint, the dependencies and the serialization beneath it, into the tracer provider it is given.
This module gives it one, built from the standard variables, and adds what is tiermem's own to
each request span: ``tiermem.agent_id`` (the agent in the path) and ``tiermem.caller`` and
``tiermem.access_tier`` (who called, from the bearer token), and the route of a request the bearer
middleware refused before FastAPI routed it.

Traces are asked for by ``OTEL_TRACES_EXPORTER`` (a comma-separated list of exporter names:
``otlp``, ``console``, or any exporter installed under OpenTelemetry's entry points; ``none``
turns traces off) or, with that unset, by ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (``otlp`` implied). ``otlp`` sends over
``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf`` by
default, or ``grpc``). The SDK reads the rest itself: the endpoint, headers and timeout of the
exporter, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the service name defaults to
``tiermem``), ``OTEL_TRACES_SAMPLER``. ``OTEL_SDK_DISABLED=true`` turns everything off. A
process that configured a tracer provider of its own (``opentelemetry-instrument tiermem serve``,
or an application embedding the server) keeps it: FastAPI uses the global provider then.

It needs ``opentelemetry-sdk`` (``pip install 'tiermem[tracing]'``, which brings the OTLP HTTP
exporter too); without it, traces asked for are refused with a warning and the server runs
untraced. Without the variables nothing of the SDK is imported and no middleware is added.

The app is built with::

    settings = tracing.telemetry()
    app = FastAPI(..., telemetry=settings)
    tracing.install(app, settings)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from fastapi.telemetry import TelemetryConfig
from starlette.routing import BaseRoute

from memory.server.auth import current_principal
from memory.server.bearer import ASGIApp, Receive, Scope, Send
from memory.server.metrics import UNMATCHED, RouteTemplates, arrival

log = logging.getLogger(__name__)

SERVICE_NAME = "tiermem"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The span exporters the variables ask for (entry-point names); empty: no traces."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = "otlp" if endpoint else "none"
    chosen = [name.strip() for name in names.split(",") if name.strip() and name.strip() != "none"]
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip()
    if "otlp" in chosen and protocol not in _OTLP_BY_PROTOCOL:
        log.warning("the OTLP protocol %r is not one of %s: no spans are sent over OTLP", protocol, ", ".join(_OTLP_BY_PROTOCOL))
        chosen.remove("otlp")
    return [_OTLP_BY_PROTOCOL[protocol] if name == "otlp" else name for name in chosen]


def telemetry(environ: Mapping[str, str] | None = None) -> TelemetryConfig:
    """The ``telemetry=`` settings for ``FastAPI()``: a tracer provider of the server's own, built
    from the variables, when they ask for traces and no provider is configured process-wide;
    else FastAPI's defaults (the global providers, which trace nothing unless configured)."""
    names = exporter_names(environ)
    if not names or _global_provider_configured():
        return TelemetryConfig()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("traces were asked for (OTEL_* variables) but opentelemetry-sdk is not installed "
                    "(pip install 'tiermem[tracing]'): the server runs untraced")
        return TelemetryConfig()
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, else the SDK's placeholder name
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # flushed and shut down at exit
    exporters = 0
    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("no span exporter %r is installed (OTEL_TRACES_EXPORTER): its spans are not sent", name)
            continue
        provider.add_span_processor(BatchSpanProcessor(next(iter(found)).load()()))
        exporters += 1
    if not exporters:
        provider.shutdown()
        return TelemetryConfig()
    return TelemetryConfig(tracer_provider=provider)


def _global_provider_configured() -> bool:
    """Whether something in this process set a global tracer provider (the API's default is a proxy)."""
    from opentelemetry import trace  # the API alone: FastAPI imports it already

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def install(app: Any, settings: Mapping[str, Any]) -> bool:
    """Add tiermem's attributes to the request spans FastAPI makes, when it makes any: ``settings``
    (what :func:`telemetry` returned, given to ``FastAPI()``) name a tracer provider, or one is
    configured process-wide. Returns whether it did."""
    if settings.get("tracer_provider") is None and not _global_provider_configured():
        return False
    app.add_middleware(SpanAttributes, routes=app.router.routes)
    return True


class SpanAttributes:
    """ASGI middleware: names the agent and the caller on the current request span."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        from opentelemetry import trace

        self.app = app
        self.templates = RouteTemplates(routes)
        self._current_span = trace.get_current_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = self._current_span()
        if not span.is_recording():
            await self.app(scope, receive, send)
            return
        arrived = arrival(scope)

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if scope.get("route") is None:  # refused before routing (a 401): FastAPI named no route
                    template, params = self.templates.match(arrived)
                    if template != UNMATCHED:
                        span.set_attribute("http.route", template)
                        span.update_name(f"{scope['method']} {template}")
                    scope.setdefault("path_params", params)
                agent = scope.get("path_params", {}).get("agent_id")
                if isinstance(agent, str):
                    span.set_attribute("tiermem.agent_id", agent)
                principal = current_principal.get()  # set by BearerAuth around the route, so seen here
                if principal is not None:
                    span.set_attribute("tiermem.caller", principal.name)
                    span.set_attribute("tiermem.access_tier", principal.tier.name.lower())
            await send(message)

        await self.app(scope, receive, sending)
