"""Shared fixtures: both Redis engines (the real server and the embedded fakeredis), SQLite and
PostgreSQL for the long-term tier, an engine factory that cleans up after itself, and the fault
suite's harness (a reply-losing proxy, redis-servers of a test's own, embedded child processes).

With TIERMEM_REQUIRE_SERVICES=1 (set by .ci/run) a missing Redis or PostgreSQL fails the tests
that need it instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import fakeredis
import pytest
import redis
import sqlalchemy

from memory.config import MemoryConfig
from memory import AgentMemoryAPI
from tiers import embedded_client

from fault_support import EmbeddedChild, LossyProxy, RedisProcess

REQUIRE_SERVICES = os.environ.get("TIERMEM_REQUIRE_SERVICES") == "1"
TEST_REDIS_URL = os.environ.get("TIERMEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
TEST_POSTGRES_URL = os.environ.get("TIERMEM_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_ENGINES = ["redis", "embedded"]


def unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (TIERMEM_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def real_redis() -> redis.Redis:
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {TEST_REDIS_URL}", exc)
    return client


def cut_off_redis(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    """Inject a lost connection into a real client: every command, pipeline, new connection and
    connection already taken (tiers.scripts keeps the ones it took) fails."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise redis.exceptions.ConnectionError("injected: Redis went away")

    monkeypatch.setattr(client, "execute_command", refuse)
    monkeypatch.setattr(client, "pipeline", refuse)
    monkeypatch.setattr(client.connection_pool, "get_connection", refuse)
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", refuse)


def make_redis_client(engine: str) -> Any:
    if engine == "redis":
        return real_redis()
    return embedded_client.client(fakeredis.FakeServer())  # the embedded engine's own client


@pytest.fixture(params=REDIS_ENGINES)
def redis_engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def redis_client(redis_engine: str) -> Iterator[Any]:
    client = make_redis_client(redis_engine)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix no other test uses; its keys (and those of prefixes it starts) are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    keys = list(redis_client.scan_iter(match=f"{name}*", count=1000))
    for start in range(0, len(keys), 500):
        redis_client.delete(*keys[start : start + 500])


@pytest.fixture
def make_api(redis_client: Any, prefix: str, tmp_path: Any) -> Iterator[Callable[..., AgentMemoryAPI]]:
    """Build engines on the test's Redis engine, its prefix and a SQLite file in tmp_path."""
    apis: list[AgentMemoryAPI] = []

    def factory(**options: Any) -> AgentMemoryAPI:
        options.setdefault("key_prefix", prefix)
        options.setdefault("data_dir", str(tmp_path / "data"))
        kwargs = {name: options.pop(name) for name in ("clock", "ltm_engine") if options.get(name) is not None}
        api = AgentMemoryAPI(MemoryConfig(**options), redis_client=redis_client, **kwargs)
        apis.append(api)
        return api

    yield factory
    for api in apis:
        api.close()


@pytest.fixture
def api(make_api: Callable[..., AgentMemoryAPI]) -> AgentMemoryAPI:
    return make_api()


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


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[sqlalchemy.engine.Engine]:
    """PostgreSQL in a schema shared by the session's tests (namespaces keep them apart)."""
    with postgres_schema() as engine:
        yield engine


@pytest.fixture
def private_postgres_engine() -> Iterator[sqlalchemy.engine.Engine]:
    """PostgreSQL in a schema of this test's own (for tests that change the schema itself)."""
    with postgres_schema() as engine:
        yield engine


@pytest.fixture
def clock() -> "FakeClock":
    return FakeClock()


class FakeClock:
    """An injectable wall clock for TTL tests: advance it instead of sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the fault suite's harness (tests/fault_support.py) ----------------------------------------------


@pytest.fixture
def lossy_proxy() -> Iterator[LossyProxy]:
    """A LossyProxy in front of the shared test Redis; its connections are closed afterwards."""
    real_redis().close()  # fails (or skips) here when the shared Redis is not up
    where = redis.connection.parse_url(TEST_REDIS_URL)
    proxy = LossyProxy(where.get("host", "127.0.0.1"), where.get("port", 6379))
    yield proxy
    proxy.close()


@pytest.fixture
def make_redis_process(tmp_path: Any) -> Iterator[Callable[..., RedisProcess]]:
    """Start redis-servers of the test's own (``persistent``: AOF, fsync always); every one is
    SIGKILLed afterwards, by pid."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server", FileNotFoundError("not on PATH"))
    started: list[RedisProcess] = []

    def factory(persistent: bool = True, name: str = "redis") -> RedisProcess:
        server = RedisProcess(tmp_path / name, persistent)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.kill()


@pytest.fixture
def embedded_child(tmp_path: Any) -> Iterator[Callable[..., EmbeddedChild]]:
    """Start ``sys.executable -c script *args`` children (PYTHONPATH set); each is SIGKILLed afterwards."""
    children: list[EmbeddedChild] = []

    def start(script: str, *args: str) -> EmbeddedChild:
        child = EmbeddedChild(script, [str(a) for a in args], tmp_path / f"child{len(children)}.stderr")
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
