"""The memory-manager contract, run on every manager and store (see conversation_backends.py)."""

from __future__ import annotations

import pytest
import sqlalchemy

from conversation_backends import Backend
from memory.conversation import (
    ConversationConflictError,
    ConversationMemory,
    DatabaseMemoryManager,
    InMemoryManager,
    InvalidConversationError,
    RedisMemoryManager,
)
from support import FakeClock
from tiers.errors import MemoryAPIException, MemoryConfigException, MemoryRetrievalException, MemoryStoreException

BAD_IDS = ["", "has space", "x" * 121, 42, None, "brace{tag}", "semi;colon", "ümlaut", "new\nline"]


async def add_turn(manager, conversation_id: str, message: str) -> ConversationMemory:
    async def change(current: ConversationMemory) -> ConversationMemory:
        return current.with_turn(message, f"{current.working_memory}|{message}", 1.0, keep_turns=1000)

    return await manager.update(conversation_id, change)


async def test_unknown_conversation_retrieves_none(manager):
    assert await manager.retrieve({"conversation_id": "nobody-here"}) is None
    assert await manager.get("nobody-here") is None


async def test_store_then_retrieve_gives_an_object_with_working_memory(manager):
    stored = await manager.store({"conversation_id": "conv-1", "working_memory": "User likes technical details"})
    assert stored.version == 1
    found = await manager.retrieve({"conversation_id": "conv-1"})
    assert len(found) == 1
    assert found[0].working_memory == "User likes technical details"
    assert found[0].conversation_id == "conv-1" and found[0].version == 1
    await manager.store({"conversation_id": "conv-1", "working_memory": "now this"})
    (again,) = await manager.retrieve({"conversation_id": "conv-1"})
    assert again.working_memory == "now this" and again.version == 2


async def test_turns_and_unicode_survive_the_round_trip(manager):
    await add_turn(manager, "conv-1", "héllo — 你好 \"quoted\" \\ back")
    await add_turn(manager, "conv-1", "second\nline")
    memory = await manager.get("conv-1")
    assert [t.message for t in memory.turns] == ["héllo — 你好 \"quoted\" \\ back", "second\nline"]
    assert [t.number for t in memory.turns] == [1, 2] and memory.turn_count == 2
    assert memory.working_memory == "|héllo — 你好 \"quoted\" \\ back|second\nline"


async def test_store_sets_the_working_memory_and_keeps_the_turns(manager):
    await add_turn(manager, "conv-1", "hello")
    await manager.store({"conversation_id": "conv-1", "working_memory": "rewritten"})
    memory = await manager.get("conv-1")
    assert memory.working_memory == "rewritten"
    assert memory.turn_count == 1 and [t.message for t in memory.turns] == ["hello"]


async def test_one_conversation_never_sees_another(manager):
    ids = ["alice", "alice:2", "Alice", "alice.", "bob"]
    for conversation_id in ids:
        await manager.store({"conversation_id": conversation_id, "working_memory": f"memory of {conversation_id}"})
    for conversation_id in ids:
        (found,) = await manager.retrieve({"conversation_id": conversation_id})
        assert found.working_memory == f"memory of {conversation_id}"
    assert await manager.delete("alice")
    assert await manager.get("alice") is None
    assert (await manager.get("alice:2")).working_memory == "memory of alice:2"


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
async def test_bad_conversation_ids_are_refused_and_nothing_changes(manager, bad_id):
    await manager.store({"conversation_id": "kept", "working_memory": "untouched"})
    with pytest.raises(InvalidConversationError) as caught:
        await manager.store({"conversation_id": bad_id, "working_memory": "x"})
    assert isinstance(caught.value, ValueError) and "conversation_id" in str(caught.value)
    for call in (
        manager.retrieve({"conversation_id": bad_id}),
        manager.get(bad_id),
        manager.delete(bad_id),
        add_turn(manager, bad_id, "x"),
    ):
        with pytest.raises(InvalidConversationError):
            await call
    assert (await manager.get("kept")).working_memory == "untouched"


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"working_memory": "x"}, "no conversation_id"),
        ({"conversation_id": "c", "working_memory": 7}, "working_memory must be a str"),
        ({"conversation_id": "c", "working_memory": "x", "memory": "y"}, "unknown keys"),
        (["conversation_id", "c"], "must be a dict"),
    ],
)
async def test_bad_store_data_is_refused_and_nothing_changes(manager, data, problem):
    await manager.store({"conversation_id": "c", "working_memory": "before"})
    with pytest.raises(InvalidConversationError, match=problem):
        await manager.store(data)
    assert (await manager.get("c")).working_memory == "before"
    with pytest.raises(InvalidConversationError, match="unknown keys"):
        await manager.retrieve({"conversation_id": "c", "limit": 3})


async def test_a_failing_change_writes_nothing(manager):
    await add_turn(manager, "c", "one")

    async def broken(current):
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        await manager.update("c", broken)

    async def other_conversation(current):
        return ConversationMemory.empty("someone-else")

    async def turns_backwards(current):
        return ConversationMemory.empty("c")

    for change in (other_conversation, turns_backwards):
        with pytest.raises(InvalidConversationError):
            await manager.update("c", change)
    memory = await manager.get("c")
    assert memory.turn_count == 1 and memory.version == 1 and memory.working_memory == "|one"


async def test_a_writer_that_always_loses_gives_up_with_a_conflict_error(shared_backend: Backend):
    loser = shared_backend.open(conflict_timeout=0.3)
    winner = shared_backend.open()
    wins = 0

    async def interfered(current):
        nonlocal wins
        wins += 1
        await add_turn(winner, "hot", f"winner {wins}")  # another writer gets in before every write
        return current.with_turn("loser", "loser", 2.0, keep_turns=1000)

    with pytest.raises(ConversationConflictError) as caught:
        await loser.update("hot", interfered)
    assert caught.value.attempts == wins >= 2
    memory = await winner.get("hot")
    assert memory.turn_count == wins and "loser" not in [t.message for t in memory.turns]


async def test_in_memory_ttl_and_bound_follow_the_clock():
    clock = FakeClock()
    manager = InMemoryManager(ttl=60, max_conversations=2, clock=clock)
    await manager.store({"conversation_id": "a", "working_memory": "A"})
    clock.advance(59)
    assert (await manager.get("a")).working_memory == "A"
    clock.advance(1)
    assert await manager.get("a") is None
    for name in "bcd":
        await manager.store({"conversation_id": name, "working_memory": name})
    assert await manager.get("b") is None and len(manager) == 2
    for bad in ({"ttl": 0}, {"ttl": "1h"}, {"max_conversations": 0}, {"conflict_timeout": -1}):
        with pytest.raises(InvalidConversationError):
            InMemoryManager(**bad)


@pytest.mark.parametrize("kind", ["redis", "redis-embedded"])
async def test_redis_keys_are_namespaced_and_expire_a_day_after_the_last_write(kind, request, tmp_path):
    store = Backend(kind, request, tmp_path)
    try:
        manager = store.open()
        await manager.store({"conversation_id": "ticket-1", "working_memory": "x"})
        assert manager.key("ticket-1") == f"{store.prefix}:conversation:{{ticket-1}}"
        assert 86_000 < await manager.ttl_remaining("ticket-1") <= 86_400
        short = store.open(ttl=30)
        await short.store({"conversation_id": "ticket-1", "working_memory": "y"})
        assert 0 < await short.ttl_remaining("ticket-1") <= 30
        forever = store.open(ttl=None)
        await forever.store({"conversation_id": "ticket-1", "working_memory": "z"})
        assert await forever.ttl_remaining("ticket-1") is None
        assert (await manager.get("ticket-1")).version == 3
    finally:
        await store.close()


async def test_redis_refuses_bad_options():
    with pytest.raises(InvalidConversationError, match="either redis_url or client"):
        RedisMemoryManager()
    with pytest.raises(InvalidConversationError, match="ttl"):
        RedisMemoryManager("redis://127.0.0.1:6379/9", ttl=-5)
    with pytest.raises(InvalidConversationError, match="key_prefix"):
        RedisMemoryManager("redis://127.0.0.1:6379/9", key_prefix="bad prefix")


async def test_an_unreachable_redis_is_a_typed_error_and_the_manager_keeps_working():
    manager = RedisMemoryManager("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(MemoryRetrievalException, match="Redis did not answer"):
            await manager.retrieve({"conversation_id": "c"})
        with pytest.raises(MemoryRetrievalException):
            await manager.store({"conversation_id": "c", "working_memory": "x"})  # its read fails first
        with pytest.raises(MemoryStoreException):
            await manager.delete("c")
    finally:
        await manager.close()


async def test_a_failing_database_is_a_typed_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    manager = DatabaseMemoryManager(url)
    try:
        await manager.store({"conversation_id": "c", "working_memory": "x"})
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP TABLE tiermem_conversations"))
        engine.dispose()
        with pytest.raises(MemoryRetrievalException, match="database did not answer"):
            await manager.get("c")
        with pytest.raises(MemoryStoreException, match="database did not delete"):
            await manager.delete("c")
    finally:
        await manager.close()


async def test_database_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(MemoryConfigException, match="in-memory SQLite"):
        DatabaseMemoryManager("sqlite://")
    with pytest.raises(MemoryConfigException, match="Engine or a URL"):
        DatabaseMemoryManager(42)  # type: ignore[arg-type]
    with pytest.raises(MemoryConfigException):
        DatabaseMemoryManager("nosuchdialect://x")
    with pytest.raises(InvalidConversationError, match="namespace"):
        DatabaseMemoryManager(f"sqlite:///{tmp_path / 'c.sqlite'}", namespace="has space")


async def test_database_namespaces_share_a_table_without_seeing_each_other(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    clock = FakeClock()
    first = DatabaseMemoryManager(url, namespace="app1", clock=clock)
    second = DatabaseMemoryManager(url, namespace="app2", clock=clock)
    try:
        await first.store({"conversation_id": "c", "working_memory": "one"})
        assert await second.get("c") is None
        clock.advance(100)
        await second.store({"conversation_id": "c", "working_memory": "two"})
        assert await first.purge_idle(50) == 1 and await first.get("c") is None
        assert (await second.get("c")).working_memory == "two"
    finally:
        await first.close()
        await second.close()


async def test_a_closed_manager_says_so(backend: Backend):
    manager = backend.open()
    await manager.store({"conversation_id": "c", "working_memory": "x"})
    await manager.close()
    await manager.close()  # closing twice is harmless
    if backend.kind in ("sqlite", "postgresql", "tiered", "tiered-redis"):
        with pytest.raises(MemoryAPIException, match="closed"):
            await manager.history("c") if backend.kind.startswith("tiered") else await manager.get("c")
