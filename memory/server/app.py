"""The HTTP server: one FastAPI application over an engine and, optionally, a team's shared memory.

    create_app(engine, team=None, *, tokens=None, max_body_bytes=1 MiB, host="127.0.0.1") -> FastAPI

It serves the REST API under /v1 (memory/server/routes_memories.py, routes_team.py), its OpenAPI
document at /openapi.json (and a browsable one at /docs), the MCP tools at /mcp (streamable HTTP,
memory/server/mcp.py), Prometheus metrics at /metrics (memory/server/metrics.py; traces when OTEL_*
configures them, memory/server/tracing.py) and the memory explorer's static page at /explorer/
(memory/server/static/). Every request goes through, from the outside in: a body-size
limit (413 before anything is parsed), :class:`~memory.server.bearer.BearerAuth` (401 without a known
token, except on the public paths), then the routes, each checking its caller's tier and bounds.
Every error answers ``{"error", "message"}`` (memory/server/errors.py). ``tokens`` None or empty:
every caller is the local steward, so only serve it on loopback (``auth.check_bind``).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from memory._engine.agent_memory import AgentMemoryAPI
from memory.server import errors, mcp, metrics, routes_memories, routes_team, tracing
from memory.server.auth import TokenTable
from memory.server.bearer import BearerAuth
from memory.server.bodies import BodyLimit
from memory.team.store import RedisShortTermMemory

DEFAULT_MAX_BODY = 1 << 20  # bytes of a request body (1 MiB)
STATIC = Path(__file__).resolve().parent / "static"
PUBLIC = ("/v1/health", "/explorer", "/openapi.json", "/docs")


def _version() -> str:
    try:
        return metadata.version("tiermem")
    except metadata.PackageNotFoundError:
        return "unknown"


def team_beside(engine: AgentMemoryAPI) -> RedisShortTermMemory:
    """The coordination layer's memory on the engine's Redis (or embedded engine), key prefix and LTM database."""
    config = engine.config
    url = "" if engine.mode == "embedded" else config.redis_url_option()
    ltm = config.ltm_config
    ltm_url = ltm.url if ltm.url is not None or ltm.db_path is None else f"sqlite:///{Path(ltm.db_path).resolve()}"
    return RedisShortTermMemory(url, data_dir=config.data_dir, key_prefix=config.key_prefix, ltm_url=ltm_url,
                                wait_replicas=config.wait_replicas)


def create_app(engine: AgentMemoryAPI, team: RedisShortTermMemory | None = None, *, tokens: TokenTable | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY, host: str = "127.0.0.1") -> FastAPI:
    """The server over ``engine`` (and the team routes over ``team`` when given), guarded by ``tokens``.
    ``host``: the address it listens on (on loopback, MCP refuses foreign Host and Origin headers)."""
    telemetry = tracing.telemetry()
    app = FastAPI(title="tiermem", version=_version(), telemetry=telemetry,
                  description="A memory engine for agents: memories in tiers, and the coordination of agent teams.")
    errors.install(app)

    @app.get("/v1/health", tags=["server"])
    async def health() -> dict[str, str]:
        """Whether the server answers (no token needed)."""
        return {"status": "ok"}

    app.include_router(routes_memories.router(engine))
    if team is not None:
        app.include_router(routes_team.router(team))
    app.include_router(mcp.mcp_router(engine, team, host=host))  # /mcp: streamable HTTP
    app.mount("/explorer", StaticFiles(directory=STATIC, html=True), name="explorer")
    app.add_middleware(BearerAuth, tokens=tokens if tokens is not None else TokenTable({}), public=PUBLIC)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # added last: the outer one
    metrics.install(app, engine)  # after the middlewares, so that it counts what they refuse (401, 413) too
    tracing.install(app, telemetry)
    return app
