"""AsyncAgentMemoryAPI: the engine on asyncio, every call the sync API's own code.

An AsyncAgentMemoryAPI owns an AgentMemoryAPI whose Redis connections wait on the event loop
(tiers/async_bridge.py) and whose long-term store's SQL runs in a thread of its own on
the sync driver, one hop per LTM operation (tiers/ltm_schema.guarded). Not on an asyncio driver
under SQLAlchemy's AsyncEngine: aiosqlite hops to its thread for every step of every statement
(a read from LTM then costs 1.5-2x the sync call, against 1.2-1.3x so), and the tier's bulk
writes to PostgreSQL use psycopg's COPY through the driver's own cursor, which psycopg's async
connection offers only awaited. Each method runs the sync method of the same name in a greenlet
(tiers/async_bridge.run_call), one call at a time per instance: the engine's own locks are
thread locks, and two calls interleaved on one thread would wait on each other for ever.
Results, errors and guarantees are the sync API's; only the waiting differs: while a call waits
for Redis or SQL, the event loop runs other tasks.

- ``maintenance_mode="background"`` and ``text_embedding="background"`` run in threads, which
  cannot use the event loop's connections: refused (MemoryConfigException). Maintenance runs in
  the call that makes it due or asks for it, one agent after another (``maintenance_workers``
  does not apply); the text model runs in the engine's SQL thread.
- The embedded engine (fakeredis) runs in this process and never waits: its calls run the same
  way, on its in-process client.
- An instance belongs to the event loop it was opened on.
- A call cancelled once it has begun runs to its end first (tiers/async_bridge.py): it took
  effect whole, or (cancelled while it waited for its turn) not at all.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from memory._engine.agent_memory import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.query import QueryBuilder
from memory.space import MemorySpace
from tiers.async_bridge import Caller, GreenConnection, green_client, run_call
from tiers.connection import Connection, resolve
from tiers.errors import MemoryAPIException, MemoryConfigException, MissingExtraError

# The sync API's methods that the async one runs as they are (each an ``async def`` here).
CALLS = (
    "store_agent_state", "store_agent_interaction", "store_agent_action", "store_many",
    "get_memory", "set_importance_score", "clear_agent_memory", "delete_memory", "delete_memories",
    "retrieve_by_time_range", "retrieve_recent", "retrieve_most_important", "retrieve_by_attributes",
    "retrieve_similar_states", "search_by_embedding", "search_by_content", "retrieve_by_location",
    "retrieve_nearest", "rebuild_indices", "import_memories", "force_memory_maintenance", "list_agents",
    "get_memory_statistics", "get_process_statistics", "clear_cache", "set_cache_ttl",
)
EXPORT_PAGE = 256  # memories an export hands over per call


class _BridgedEngine(AgentMemoryAPI):
    """The sync engine on green Redis connections (its SQL runs in its caller's thread: tiers/ltm_schema.guarded)."""

    _threads = False

    def _connect(self, config: MemoryConfig, redis_client: Any) -> Connection:
        return resolve(data_dir=config.data_dir, url=config.redis_url_option(), client=redis_client,
                       socket_timeout=config.redis_timeout, connection_class=GreenConnection)


def _check_config(config: MemoryConfig) -> None:
    if config.maintenance_mode == "background":
        raise MemoryConfigException('maintenance_mode="background" runs a thread, which the async API cannot lend its '
                                    'event loop\'s connections: use "inline" (the default) with AsyncAgentMemoryAPI')
    if config.search_config.text_embedding == "background":
        raise MemoryConfigException('search_config.text_embedding="background" runs a thread, which the async API cannot '
                                    'lend its event loop\'s connections: use "on_query" or "off" with AsyncAgentMemoryAPI')
    if importlib.util.find_spec("greenlet") is None:
        raise MissingExtraError("async", "AsyncAgentMemoryAPI runs the engine in greenlets (no module 'greenlet')")


class AsyncAgentMemoryAPI:
    """The tiered memory engine for asyncio: the methods of :class:`AgentMemoryAPI`, awaited.

    ``async with AsyncAgentMemoryAPI(config) as memory:`` (or ``await memory.open()``, then
    ``await memory.aclose()``). ``redis_client``: a ``redis.asyncio.Redis`` or
    ``redis.asyncio.cluster.RedisCluster`` (its server and credentials, with connections of the
    engine's own; plain TCP), or a fakeredis async client (the embedded engine on its server);
    ``ltm_engine``: a SQLAlchemy ``Engine``, as for AgentMemoryAPI (the caller disposes both).
    """

    def __init__(self, config: MemoryConfig | None = None, *, redis_client: Any = None, ltm_engine: Any = None,
                 clock: Callable[[], float] = time.time, adopt_deployment: bool = False):
        if config is None:
            config = MemoryConfig()
        if not isinstance(config, MemoryConfig):
            raise MemoryConfigException(f"config must be a MemoryConfig, got {type(config).__name__}")
        _check_config(config)
        if hasattr(ltm_engine, "sync_engine"):
            raise MemoryConfigException("ltm_engine must be a SQLAlchemy Engine, not an AsyncEngine: the async API runs "
                                        "the long-term store's SQL in a thread of its own, on a sync driver")
        self.config = config
        self._options = {"redis_client": redis_client, "ltm_engine": ltm_engine, "clock": clock,
                         "adopt_deployment": adopt_deployment}
        self._engine: AgentMemoryAPI | None = None
        self._client: Any = None  # the sync client made for the caller's redis_client (closed here)
        self._lock = asyncio.Lock()
        self._caller = Caller()
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------------
    async def open(self) -> AsyncAgentMemoryAPI:
        """Connect and open the tiers (what AgentMemoryAPI's constructor does); returns self."""
        async with self._lock:
            if self._closed:
                raise MemoryAPIException("this AsyncAgentMemoryAPI is closed")
            if self._engine is None:
                try:
                    self._engine = await run_call(self._caller, self._build)
                except BaseException:
                    self._caller.close()
                    raise
        return self

    def _build(self) -> AgentMemoryAPI:
        options = dict(self._options)
        if options["redis_client"] is not None:
            self._client = options["redis_client"] = green_client(options["redis_client"])
        try:
            return _BridgedEngine(self.config, **options)
        except BaseException:
            self._close_client()
            raise

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close as AgentMemoryAPI.close does (indices saved, connections released)."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._engine is not None:  # kept: a call after this raises the closed engine's error
                await run_call(self._caller, self._close_engine, self._engine)

    def _close_engine(self, engine: AgentMemoryAPI) -> None:
        try:
            engine.close()
        finally:
            self._close_client()
            self._caller.close()

    async def __aenter__(self) -> AsyncAgentMemoryAPI:
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def _opened(self) -> AgentMemoryAPI:
        if self._engine is None:
            raise MemoryAPIException("this AsyncAgentMemoryAPI is closed" if self._closed else
                                     "open this AsyncAgentMemoryAPI first: `await memory.open()` or `async with`")
        return self._engine

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await run_call(self._caller, fn, *args, **kwargs)

    @property
    def mode(self) -> str:
        """``"redis"`` or ``"embedded"``."""
        return self._opened().mode

    @property
    def deployment(self) -> dict[str, Any]:
        """As AgentMemoryAPI.deployment."""
        return self._opened().deployment

    @property
    def clock(self) -> Callable[[], float]:
        """As AgentMemoryAPI.clock."""
        return self._opened().clock

    # -- what does not map one to one ----------------------------------------------------------------
    def get_memory_space(self, agent_id: str) -> MemorySpace:
        """One agent's view, as AgentMemoryAPI.get_memory_space; each of its calls is awaited."""
        return MemorySpace(self, agent_id)  # type: ignore[arg-type]  # it calls only methods both APIs have

    def query(self, agent_id: str) -> AsyncQueryBuilder:
        """A combined query, as AgentMemoryAPI.query; ``await ....top(n)`` or ``await ....all()``."""
        return AsyncQueryBuilder(self, self._opened().query(agent_id))

    def query_agents(self, agent_ids: Iterable[str] | None = None) -> AsyncQueryBuilder:
        """A combined query over several agents, as AgentMemoryAPI.query_agents."""
        return AsyncQueryBuilder(self, self._opened().query_agents(agent_ids))

    async def export_memories(self, agent_ids: Iterable[str] | None = None, *, vectors: bool = False,
                              tiers: bool = False) -> AsyncIterator[dict[str, Any]]:
        """As AgentMemoryAPI.export_memories, iterated with ``async for`` (a page per wait)."""
        engine = self._opened()
        memories = await self._run(engine.export_memories, agent_ids, vectors=vectors, tiers=tiers)
        while True:
            page = await self._run(lambda: list(itertools.islice(memories, EXPORT_PAGE)))
            if not page:
                return
            for memory in page:
                yield memory


def _bridged(name: str) -> Callable[..., Any]:
    method = getattr(AgentMemoryAPI, name)

    @functools.wraps(method)
    async def call(self: AsyncAgentMemoryAPI, *args: Any, **kwargs: Any) -> Any:
        return await self._run(method, self._opened(), *args, **kwargs)

    call.__qualname__ = f"AsyncAgentMemoryAPI.{name}"
    return call


for _name in CALLS:
    setattr(AsyncAgentMemoryAPI, _name, _bridged(_name))


# QueryBuilder's conditions (each returns a new builder) and the calls that run the query.
CONDITIONS = ("between", "of_type", "min_importance", "where", "near", "in_box", "nearest_to", "similar_to",
              "similar_to_embedding", "rank_by", "in_tiers")
RUNS = ("top", "all")


class AsyncQueryBuilder:
    """A QueryBuilder whose ``top`` and ``all`` are awaited; the conditions chain as there."""

    def __init__(self, api: AsyncAgentMemoryAPI, builder: QueryBuilder):
        self._api = api
        self._builder = builder

    def __repr__(self) -> str:
        return f"Async{self._builder!r}"


def _condition(name: str) -> Callable[..., AsyncQueryBuilder]:
    method = getattr(QueryBuilder, name)

    @functools.wraps(method)
    def chain(self: AsyncQueryBuilder, *args: Any, **kwargs: Any) -> AsyncQueryBuilder:
        return AsyncQueryBuilder(self._api, method(self._builder, *args, **kwargs))

    chain.__qualname__ = f"AsyncQueryBuilder.{name}"
    return chain


def _run_query(name: str) -> Callable[..., Any]:
    method = getattr(QueryBuilder, name)

    @functools.wraps(method)
    async def run(self: AsyncQueryBuilder, *args: Any, **kwargs: Any) -> Any:
        return await self._api._run(method, self._builder, *args, **kwargs)

    run.__qualname__ = f"AsyncQueryBuilder.{name}"
    return run


for _name in CONDITIONS:
    setattr(AsyncQueryBuilder, _name, _condition(_name))
for _name in RUNS:
    setattr(AsyncQueryBuilder, _name, _run_query(_name))
