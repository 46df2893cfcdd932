"""The team layer's async forms (memory/team/async_team.py) on the real Redis and the embedded
engine: working memory, access refusals, atomic claims among many coroutines (and a sync
coordinator), signals between coroutines on one memory while one waits, patterns, sessions, and
the event loop kept ticking while a receive waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from memory import (
    AccessDeniedError,
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    AgentWorkspace,
    AsyncAgentCoordinator,
    AsyncAgentWorkspace,
    AsyncRedisShortTermMemory,
    AsyncTeamSession,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
)
from memory.team import async_team
from support import ON_CLUSTER, TEST_REDIS_URL
from tiers.errors import InvalidInputError

OBSERVER = AgentCredentials("watcher", AccessTier.OBSERVER)
WRITER = AgentCredentials("writer", AccessTier.CONTRIBUTOR)


@pytest.fixture
async def amemory(redis_engine: str, team_prefix: str, tmp_path: Any,
                  make_memory: Callable[..., RedisShortTermMemory]) -> AsyncIterator[AsyncRedisShortTermMemory]:
    """An async team memory on the test's engine, with make_memory's prefix and data directory."""
    options: dict[str, Any] = {"key_prefix": team_prefix, "data_dir": str(tmp_path / "data")}
    url = TEST_REDIS_URL if redis_engine == "redis" else ""
    async with AsyncRedisShortTermMemory(url, **options) as memory:
        yield memory


def test_every_public_method_of_the_sync_classes_has_its_async_form():
    for sync_cls, async_cls in async_team.MAPPING.items():
        missing = {name for name in async_team.sync_methods(sync_cls)
                   if not hasattr(async_cls, name) and name not in async_team.NOT_AWAITED}
        assert not missing, (sync_cls.__name__, missing)
        for name in async_team.sync_methods(sync_cls) - set(async_team.NOT_AWAITED):
            if name in {"has_short_term_memory", "resolve_credentials", "now_ms"}:
                continue
            assert asyncio.iscoroutinefunction(getattr(async_cls, name)), (async_cls.__name__, name)


async def test_stash_and_retrieve_with_a_ttl_and_refusals_as_in_sync(amemory, make_memory):
    sync = make_memory()
    assert await amemory.stash("plan", {"step": 1}, WRITER, ttl=60) is True
    assert await amemory.retrieve("plan", WRITER) == {"step": 1}
    assert sync.retrieve("plan", WRITER) == {"step": 1}
    assert await amemory.stash("brief", "gone soon", WRITER, ttl=0.05) is True
    await asyncio.sleep(0.15)
    assert await amemory.retrieve("brief", WRITER) is None
    for call, args in (("stash", ("k", 1, OBSERVER)), ("stash", ("k", 1, WRITER, -1)),
                       ("send_signal", (OBSERVER, "note")), ("promote_pattern", ("p", WRITER))):
        with pytest.raises(Exception) as sync_error:
            getattr(sync, call)(*args)
        with pytest.raises(type(sync_error.value)) as async_error:
            await getattr(amemory, call)(*args)
        assert str(async_error.value) == str(sync_error.value)
        assert isinstance(sync_error.value, (AccessDeniedError, InvalidInputError))
    with pytest.raises(InvalidInputError) as error:
        await amemory.receive_signals(WRITER, None, timeout=-1)
    with pytest.raises(InvalidInputError) as sync_error:
        sync.receive_signals(WRITER, None, timeout=-1)
    assert str(error.value) == str(sync_error.value)


async def test_many_coroutines_and_a_sync_coordinator_never_claim_a_task_twice(amemory, make_memory):
    coordinator = AsyncAgentCoordinator(amemory, "crew")
    sync_coordinator = AgentCoordinator(make_memory(), "crew")
    for number in range(60):
        await coordinator.add_task(AgentTask(f"t{number}", "build", priority=number % 7))
    claimed: list[str] = []
    holders: dict[str, str | None] = {}  # task -> the agent id completing it (None: the coordinator, a STEWARD)

    async def worker(agent: str) -> None:
        while (task := await coordinator.claim_task(agent, "build")) is not None:
            claimed.append(task.task_id)
            holders[task.task_id] = None
            sync_task = sync_coordinator.claim_task("sync-agent", "build")  # a sync claimer in between
            if sync_task is not None:
                claimed.append(sync_task.task_id)
                holders[sync_task.task_id] = "sync-agent"
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"agent-{n}") for n in range(8)))
    assert sorted(claimed) == sorted(f"t{n}" for n in range(60))
    assert await coordinator.get_pending_tasks("build") == []
    assert "sync-agent" in holders.values() and None in holders.values()
    first = claimed[0]
    assert await coordinator.complete_task(first, {"ok": True}, holders[first]) is True
    assert (await coordinator.get_result(first))["result"] == {"ok": True}
    assert coordinator.team_id == "crew"


async def test_a_waiting_receive_does_not_starve_a_sender_on_the_same_memory(amemory):
    reader = AsyncAgentWorkspace("reader", amemory)
    sender = AsyncAgentWorkspace("sender", amemory)
    started = time.monotonic()
    ticks = 0
    sent_at: list[float] = []

    async def ticker() -> None:
        nonlocal ticks
        while time.monotonic() - started < 0.3:
            ticks += 1
            await asyncio.sleep(0.01)

    async def send_later() -> None:
        await asyncio.sleep(0.1)
        await sender.send_signal("ready", {"n": 1}, target_agent="reader")
        sent_at.append(time.monotonic() - started)

    got, _, _ = await asyncio.gather(reader.receive_signals("ready", timeout=5.0), send_later(), ticker())
    waited = time.monotonic() - started
    assert [(s["signal_type"], s["sender"], s["data"]) for s in got] == [("ready", "sender", {"n": 1})]
    assert sent_at[0] < 0.5 and waited < 1.0  # the send landed at once, the wait ended with it, far before 5 s
    assert ticks >= 10  # the event loop ran meanwhile
    started = time.monotonic()
    assert await reader.receive_signals("ready", timeout=0.2) == []  # the timeout is honoured
    assert 0.2 <= time.monotonic() - started < 0.6


async def test_signals_keep_their_order_between_coroutines(amemory, make_memory):
    reader = AsyncAgentWorkspace("reader", amemory)
    writers = [AsyncAgentWorkspace(f"w{n}", amemory) for n in range(3)]

    async def send_all(workspace: AsyncAgentWorkspace) -> None:
        for number in range(5):
            await workspace.send_signal("step", number, target_agent="reader")

    receive = asyncio.ensure_future(reader.receive_signals("step", timeout=5.0))
    await asyncio.gather(*(send_all(w) for w in writers))
    got = await receive
    rest = await reader.receive_signals("step")
    every = got + rest
    assert len(every) == 15
    for writer in writers:
        assert [s["data"] for s in every if s["sender"] == writer.user_id] == list(range(5))
    sync_reader = AgentWorkspace("reader2", make_memory())
    await writers[0].send_signal("hello", "sync", target_agent="reader2")
    assert [s["data"] for s in sync_reader.receive_signals("hello", timeout=1.0)] == ["sync"]


async def test_staged_patterns_are_promoted_and_found(amemory):
    contributor = AsyncAgentWorkspace("finder", amemory)
    validator = AsyncAgentWorkspace("judge", amemory, AccessTier.VALIDATOR)
    pattern = StagedPattern(pattern_id="p1", agent_id="finder", pattern_type="fix", name="retry",
                            description="retry on timeout", confidence=0.9)
    assert await contributor.stage_pattern(pattern) is True
    assert [p.pattern_id for p in await validator.get_staged_patterns()] == ["p1"]
    with pytest.raises(AccessDeniedError):
        await contributor.promote_pattern("p1")
    promoted = await validator.promote_pattern("p1")
    assert promoted is not None and promoted.name == "retry"
    assert [p.name for p in await validator.find_patterns(pattern_type="fix")] == ["retry"]
    assert await validator.get_staged_patterns() == []


async def test_sessions_and_collaboration_state(amemory, make_memory):
    session = await AsyncTeamSession.open(amemory, "s1", "review", WRITER)
    assert await session.add_agent("a1") is True
    assert await session.share("doc", {"v": 2}) is True
    assert await session.get("doc") == {"v": 2}
    assert TeamSession(make_memory(), "s1", credentials=WRITER).get("doc") == {"v": 2}
    assert (await session.get_info())["participants"] == ["a1"]
    workspace = AsyncAgentWorkspace("user", amemory, session_id="sess")
    workspace.current_empathy_level = 4
    assert await workspace.persist_collaboration_state() is True
    again = AsyncAgentWorkspace("user", amemory)
    assert await again.restore_collaboration_state("sess") is True
    assert again.current_empathy_level == 4
    with pytest.raises(AttributeError):
        workspace.user_id = "other"


async def test_an_unopened_memory_and_a_sync_memory_are_refused(tmp_path):
    memory = AsyncRedisShortTermMemory("", data_dir=str(tmp_path))
    with pytest.raises(Exception, match="open this AsyncRedisShortTermMemory first"):
        await memory.stash("k", 1)
    with pytest.raises(InvalidInputError, match="AsyncRedisShortTermMemory"):
        AsyncAgentCoordinator(RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path)), "team")  # type: ignore[arg-type]


async def test_a_coordinators_refusals_are_the_sync_ones(amemory, make_memory):
    watcher = AgentCredentials("watcher", AccessTier.OBSERVER)
    sync = AgentCoordinator(make_memory(), "crew", credentials=watcher)
    coordinator = AsyncAgentCoordinator(amemory, "crew", credentials=watcher)
    for call, args in (("claim_task", ("watcher", "build")), ("add_task", (AgentTask("t", "build"),)),
                       ("complete_task", ("t",)), ("register_agent", ("a",))):
        with pytest.raises(AccessDeniedError) as sync_error:
            getattr(sync, call)(*args)
        with pytest.raises(AccessDeniedError) as async_error:
            await getattr(coordinator, call)(*args)
        assert str(async_error.value) == str(sync_error.value)


async def test_a_waiting_receive_cancelled_takes_no_signal(amemory):
    reader = AsyncAgentWorkspace("reader", amemory)
    waiting = asyncio.ensure_future(reader.receive_signals("late", timeout=5.0))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await AsyncAgentWorkspace("sender", amemory).send_signal("late", 1, target_agent="reader")
    assert [s["data"] for s in await reader.receive_signals("late")] == [1]


async def test_async_clients_of_the_callers_own(redis_engine, team_prefix, make_memory):
    import fakeredis
    import redis.asyncio
    import redis.asyncio.cluster

    if redis_engine == "redis" and ON_CLUSTER:
        first = TEST_REDIS_URL.split("://", 1)[1].split(",")[0]
        client: Any = redis.asyncio.cluster.RedisCluster.from_url(f"redis://{first}")
    elif redis_engine == "redis":
        client = redis.asyncio.Redis.from_url(TEST_REDIS_URL)
    else:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    async with AsyncRedisShortTermMemory(client=client, key_prefix=team_prefix) as memory:
        if redis_engine == "redis":
            assert memory.mode == "redis"
        assert await memory.ping() is True
        assert await memory.stash("k", [1, 2], WRITER) is True
        assert await memory.retrieve("k", WRITER) == [1, 2]
    await client.aclose()
