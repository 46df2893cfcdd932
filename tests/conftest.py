"""Every shared fixture of the suite (a test never imports one): both Redis engines (the real
server and the embedded fakeredis), SQLite and PostgreSQL for the long-term tier, an engine
factory that cleans up after itself, the coordination layer's memories, every conversation
backend, and the fault suite's harness (a reply-losing proxy, redis-servers of a test's own,
embedded child processes). The plain code they are built on is importable by name from
tests/support.py, team_support.py, conversation_backends.py and fault_support.py.

With TIERMEM_REQUIRE_SERVICES=1 (set by .ci/run) a missing Redis, PostgreSQL or text extra fails
the tests that need it instead of skipping them (support.unavailable).

Markers (registered in pyproject.toml): ``slow`` (multi-process, kill and long tests; ``make
test-fast`` leaves them out) and ``text`` (the real MiniLM model of the `text` extra: skipped
where the extra is not installed, a failure under TIERMEM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
import sqlalchemy

from cluster_support import LocalCluster
from conversation_backends import KINDS, SHARED_STORE_KINDS, Backend
from fault_support import EmbeddedChild, LossyProxy, RedisProcess, worker_port
from memory import AgentMemoryAPI, RedisShortTermMemory
from memory.config import MemoryConfig
from memory.conversation import MemoryManager
from support import (
    ON_CLUSTER,
    REDIS_ENGINES,
    REQUIRE_SERVICES,
    SINGLE_REDIS_URL,
    TEST_REDIS_URL,
    FakeClock,
    make_redis_client,
    postgres_schema,
    real_redis,
    single_redis,
    text_extra_missing,
    unavailable,
)
from team_support import delete_prefix

# Modules that never use the test Redis (pure Python, SQL alone, the embedded engine, or one
# server of their own / SINGLE_REDIS_URL): on a cluster run (make test-cluster) they would only
# repeat the single-server run, so they are left out, as are tests parametrized "embedded".
WITHOUT_THE_TEST_REDIS = {
    "test_codec", "test_validation", "test_embeddings_resolution", "test_embeddings_state", "test_embeddings_text",
    "test_vectors", "test_tier_index", "test_layout", "test_suite_layout", "test_routing", "test_ltm_schema",
    "test_faults_embedded_kill", "test_fault_support", "test_faults_lost_replies", "test_faults_conversation_replies",
    "test_scripts", "test_embedded_client", "test_faults_cluster", "test_server_cli",
}


def _needs_the_test_redis(item: pytest.Item) -> bool:
    if item.module is not None and item.module.__name__ in WITHOUT_THE_TEST_REDIS:
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    return not any(value == "embedded" or (isinstance(value, str) and value.endswith("-embedded"))
                   for value in params.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a cluster run, only the tests that use the test Redis."""
    if not ON_CLUSTER:
        return
    kept = [item for item in items if _needs_the_test_redis(item)]
    chosen = {id(item) for item in kept}
    config.hook.pytest_deselected(items=[item for item in items if id(item) not in chosen])
    items[:] = kept


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``text`` test needs the `text` extra: skipped without it, failed without it in CI."""
    if item.get_closest_marker("text") is None:
        return
    missing = text_extra_missing()
    if missing is not None:
        message = f"the text extra is not installed (no module {missing!r}; pip install -e '.[text]')"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (TIERMEM_REQUIRE_SERVICES=1)")
        pytest.skip(message)


# -- engines on both Redis engines ---------------------------------------------------------------------


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
def clock() -> FakeClock:
    return FakeClock()


# -- the coordination layer (tests/test_team_*.py) ----------------------------------------------------


@pytest.fixture
def team_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_memory(redis_engine: str, team_prefix: str, tmp_path: Any) -> Iterator[Callable[..., RedisShortTermMemory]]:
    """Build RedisShortTermMemory objects on the test's engine (the real Redis at TEST_REDIS_URL, its
    keys deleted afterwards, or the embedded default with its durable copy in tmp_path); all share
    the prefix and (embedded) the data directory."""
    made: list[RedisShortTermMemory] = []
    client = real_redis() if redis_engine == "redis" else None

    def factory(**options: Any) -> RedisShortTermMemory:
        options.setdefault("key_prefix", team_prefix)
        options.setdefault("data_dir", str(tmp_path / "data"))
        if redis_engine == "redis":
            memory = RedisShortTermMemory(TEST_REDIS_URL, **options)
        else:
            memory = RedisShortTermMemory(use_mock=True, **options)
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        memory.close()
    if client is not None:
        delete_prefix(client, team_prefix)
        client.close()


@pytest.fixture
def memory(make_memory: Callable[..., RedisShortTermMemory]) -> RedisShortTermMemory:
    return make_memory()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique prefix on the real Redis for multi-process tests (fails or skips without Redis)."""
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_prefix(client, prefix)
    client.close()


# -- conversation memory (tests/test_conversation*.py; the kinds are in conversation_backends.py) ------


@pytest_asyncio.fixture(params=KINDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every conversation memory manager on every store it runs on."""
    opened = Backend(request.param, request, tmp_path)
    yield opened
    await opened.close()


@pytest_asyncio.fixture(params=SHARED_STORE_KINDS)
async def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The backends whose second manager sees the first one's writes."""
    opened = Backend(request.param, request, tmp_path)
    yield opened
    await opened.close()


@pytest_asyncio.fixture
async def manager(backend: Backend) -> MemoryManager:
    return backend.open()


# -- the fault suite's harness (tests/fault_support.py) ----------------------------------------------


@pytest.fixture(params=["close", "hold"])
def mode(request: pytest.FixtureRequest) -> str:
    """How the proxy loses a reply: ``close`` the connection, or ``hold`` it silent."""
    return request.param


@pytest.fixture
def lossy_proxy() -> Iterator[LossyProxy]:
    """A LossyProxy in front of one test Redis server; its connections are closed afterwards."""
    single_redis().close()  # fails (or skips) here when the shared Redis is not up
    where = redis.connection.parse_url(SINGLE_REDIS_URL)
    proxy = LossyProxy(where.get("host", "127.0.0.1"), where.get("port", 6379))
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[str]:
    """The URL of a Redis Cluster: the test Redis when it is one (make test-cluster), else a
    3+3 cluster of this session's own on ports 7611-7616 (a further xdist worker's: 1000 up), stopped at the end."""
    if ON_CLUSTER:
        yield TEST_REDIS_URL
        return
    try:
        started = LocalCluster(port := worker_port(7611))
    except RuntimeError as exc:
        unavailable(f"a local Redis Cluster (redis-server, redis-cli, ports {port}-{port + 5})", exc)
    yield started.url
    started.stop()


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
