"""TieredMemoryManager: turns as interaction memories that age into LTM and come back for returning conversations."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from memory.api import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.conversation import (
    AgentInput,
    InMemoryManager,
    InvalidConversationError,
    TieredMemoryManager,
    WorkingMemoryAgent,
)
from support import FakeClock


@pytest.fixture
def api(tmp_path: Path):
    config = MemoryConfig(
        key_prefix="conv-test",
        data_dir=str(tmp_path),
        cleanup_interval=10_000,
        stm_config={"memory_limit": 4},
        im_config={"memory_limit": 4, "low_watermark": 1.0},
    )
    engine = AgentMemoryAPI(config, redis_client=fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    yield engine
    engine.close()


async def say(agent: WorkingMemoryAgent, conversation_id: str, *messages: str) -> None:
    for message in messages:
        assert await agent.process(AgentInput(message, {"conversation_id": conversation_id})) == "success"


async def test_each_turn_is_an_interaction_memory_of_the_conversation(api):
    clock = FakeClock()
    async with TieredMemoryManager(api, clock=clock) as manager:
        agent = WorkingMemoryAgent(memory_manager=manager, clock=clock)
        await say(agent, "ticket-7", "printer jams", "tried new paper")
        memories = api.retrieve_by_time_range("conv:ticket-7", 0, 10)
        assert [m["step_number"] for m in memories] == [1, 2]
        assert {m["metadata"]["memory_type"] for m in memories} == {"interaction"}
        assert memories[1]["contents"] == {
            "conversation_id": "ticket-7",
            "turn": 2,
            "message": "tried new paper",
            "at": clock.now,
            "working_memory": "[1] printer jams\n[2] tried new paper",
        }
        assert memories[0]["metadata"]["importance_score"] == 0.5
        assert api.retrieve_by_time_range("conv:other", 0, 10) == []


async def test_old_turns_age_into_ltm_and_a_returning_conversation_is_rebuilt_from_them(api):
    async with TieredMemoryManager(api) as manager:
        agent = WorkingMemoryAgent(memory_manager=manager)
        await say(agent, "customer-9", *[f"visit one, turn {i}" for i in range(1, 31)])
        before = await manager.get("customer-9")
    report = api.force_memory_maintenance(agent_id="conv:customer-9")
    assert report.as_dict()
    async with TieredMemoryManager(api, head=InMemoryManager()) as later:  # a later process: empty head
        history = await later.history("customer-9")
        assert [t.number for t in history] == list(range(1, 31))
        assert {t.tier for t in history} == {"stm", "im", "ltm"}  # old turns went down, all still found
        assert [t.message for t in await later.history("customer-9", 10, 12)] == [f"visit one, turn {i}" for i in (10, 11, 12)]
        rebuilt = await later.get("customer-9")
        assert rebuilt.extra["source"] == "archive"
        assert (rebuilt.working_memory, rebuilt.turn_count) == (before.working_memory, 30)
        assert [t.number for t in rebuilt.turns] == list(range(11, 31))  # rebuild_turns=20 newest
        await say(WorkingMemoryAgent(memory_manager=later), "customer-9", "visit two")
        after = await later.get("customer-9")
        assert after.turn_count == 31 and after.working_memory.endswith("[31] visit two")
        assert after.working_memory.startswith("[1] visit one, turn 1\n")
        assert [t.number for t in await later.history("customer-9")] == list(range(1, 32))


async def test_a_stored_working_memory_is_archived_but_is_not_a_turn(api):
    async with TieredMemoryManager(api) as manager:
        await say(WorkingMemoryAgent(memory_manager=manager), "c", "hello")
        await manager.store({"conversation_id": "c", "working_memory": "summary: greeted"})
    async with TieredMemoryManager(api, head=InMemoryManager()) as later:
        rebuilt = await later.get("c")
        assert rebuilt.working_memory == "summary: greeted" and rebuilt.turn_count == 1
        assert [t.message for t in rebuilt.turns] == ["hello"]
        assert [t.message for t in await later.history("c")] == ["hello"]


async def test_delete_forgets_head_and_archive(api):
    async with TieredMemoryManager(api) as manager:
        await say(WorkingMemoryAgent(memory_manager=manager), "gone", "one", "two")
        await say(WorkingMemoryAgent(memory_manager=manager), "kept", "three")
        assert await manager.delete("gone")
        assert await manager.get("gone") is None and await manager.history("gone") == []
        assert api.retrieve_by_time_range("conv:gone", 0, 10) == []
        assert not await manager.delete("gone")
        assert (await manager.get("kept")).turn_count == 1


async def test_managers_on_one_engine_share_the_default_head(api):
    first, second = TieredMemoryManager(api), TieredMemoryManager(api)
    assert first.head is second.head
    assert TieredMemoryManager(api, agent_prefix="c2:").head is not first.head


async def test_bad_options_are_refused(api):
    for options, problem in [
        ({"agent_prefix": "much-too-long:"}, "agent_prefix"),
        ({"agent_prefix": "a b:"}, "contains"),
        ({"priority": 1.5}, "priority"),
        ({"rebuild_turns": 0}, "rebuild_turns"),
        ({"head": object()}, "head must be"),
    ]:
        with pytest.raises(InvalidConversationError, match=problem):
            TieredMemoryManager(api, **options)
    with pytest.raises(InvalidConversationError, match="AgentMemoryAPI"):
        TieredMemoryManager("not an engine")  # type: ignore[arg-type]
