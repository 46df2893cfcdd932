"""WorkingMemoryAgent: the seed's unit test, the LLM protocol, degradation, the offline memory, the factory."""

from __future__ import annotations

from unittest.mock import AsyncMock, Mock

import fakeredis
import pytest

import memory.conversation as conversation
from conversation_backends import Backend, ScriptedLLM
from memory.api import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.conversation import (
    AgentInput,
    ConversationMemory,
    DatabaseMemoryManager,
    IAgentInput,
    InMemoryManager,
    InvalidConversationError,
    LLMClientError,
    RedisMemoryManager,
    TieredMemoryManager,
    WorkingMemoryAgent,
    WorkingMemoryPolicy,
    create_memory_agent,
)
from memory.conversation.working_memory import fold_turn, next_turn_number
from support import TEST_REDIS_URL
from tiers.errors import MemoryConfigException


def turn(message: str, conversation_id: str = "conv-1") -> AgentInput:
    return AgentInput(message=message, metadata={"conversation_id": conversation_id})


# -- the seed's unit test, as written there -------------------------------------------------------
@pytest.mark.asyncio
async def test_memory_agent_with_context():
    """Test memory agent retrieves and uses context."""
    # Mock LLM client
    mock_llm = AsyncMock()
    mock_llm.chat.return_value = {
        "llm_response": "Memory updated with user context",
        "usage": {"total_tokens": 50},
    }

    # Mock memory manager
    mock_memory = AsyncMock()
    mock_memory.retrieve.return_value = [type("obj", (), {"working_memory": "User likes technical details"})()]

    # Create agent
    agent = WorkingMemoryAgent(mock_llm, mock_memory)

    # Test with existing memory
    result = await agent.process(IAgentInput(message="Tell me about APIs", metadata={"conversation_id": "test_123"}))

    # Verify memory was retrieved and used
    mock_memory.retrieve.assert_called_once()
    mock_memory.store.assert_called_once()
    assert "success" in result
    # ... and, beyond the seed: the model saw the retrieved memory, and its answer was stored
    prompt = mock_llm.chat.call_args.args[0][-1]["content"]
    assert "User likes technical details" in prompt and "Tell me about APIs" in prompt
    mock_memory.store.assert_called_once_with({"conversation_id": "test_123",
                                               "working_memory": "Memory updated with user context"})


async def test_a_seed_style_manager_is_read_before_and_written_after_every_model_call():
    order = Mock()
    memories: dict[str, str] = {}

    async def retrieve(query):
        text = memories.get(query["conversation_id"])
        return None if text is None else [type("obj", (), {"working_memory": text})()]

    async def store(data):
        memories[data["conversation_id"]] = data["working_memory"]

    async def chat(messages):
        return {"llm_response": f"memory after: {messages[-1]['content'].rsplit(':', 1)[1].strip()}", "usage": {}}

    order.attach_mock(AsyncMock(side_effect=retrieve), "retrieve")
    order.attach_mock(AsyncMock(side_effect=store), "store")
    order.attach_mock(AsyncMock(side_effect=chat), "chat")
    seed_manager = type("SeedManager", (), {"retrieve": order.retrieve, "store": order.store})()
    agent = WorkingMemoryAgent(type("LLM", (), {"chat": order.chat})(), seed_manager)
    for i in range(3):
        assert await agent.process(turn(f"message {i}")) == "success"
    names = [call[0] for call in order.mock_calls]
    assert names == ["retrieve", "chat", "store"] * 3
    prompts = [c.args[0][-1]["content"] for c in order.chat.call_args_list]
    assert "(empty" in prompts[0] and "memory after: message 0" in prompts[1] and "memory after: message 1" in prompts[2]
    assert memories["conv-1"] == "memory after: message 2"


async def test_every_manager_is_read_before_and_written_after_each_model_call(backend: Backend):
    manager = backend.open()
    seen_before: list[ConversationMemory | None] = []

    class WatchingLLM(ScriptedLLM):
        async def chat(self, messages):
            seen_before.append(await manager.get("conv-1"))  # what the store holds while the model thinks
            return await super().chat(messages)

    llm = WatchingLLM()
    agent = WorkingMemoryAgent(llm, manager)
    answers = []
    for i in range(3):
        outcome = await agent.handle(turn(f"message {i}"))
        assert outcome.status == "success" and outcome.stored and outcome.usage["total_tokens"] > 0
        answers.append(outcome.working_memory)
        stored = await manager.get("conv-1")
        assert stored.working_memory == answers[-1] and stored.turn_count == i + 1  # stored after the call
    assert seen_before[0] is None
    assert [m.working_memory for m in seen_before[1:]] == answers[:2]  # the previous answer, read before the call
    assert [f"Current working memory:\n{a}" in c[-1]["content"] for a, c in zip(answers[:2], llm.calls[1:])] == [True, True]
    assert answers[-1] == "message 0 | message 1 | message 2"


async def test_a_failing_model_stores_nothing_and_the_agent_keeps_working(manager):
    agent = WorkingMemoryAgent(ScriptedLLM(), manager)
    assert await agent.process(turn("first")) == "success"
    for bad in (AsyncMock(side_effect=TimeoutError("model timed out")), AsyncMock(return_value={"text": "x"}),
                AsyncMock(return_value={"llm_response": "   "}), AsyncMock(return_value="just a string")):
        agent.llm_client = type("LLM", (), {"chat": bad})()
        outcome = await agent.handle(turn("second"))
        assert outcome.status.startswith("error: llm: ") and isinstance(outcome.error, LLMClientError)
        memory = await manager.get("conv-1")
        assert memory.turn_count == 1 and memory.working_memory == "first"
    agent.llm_client = ScriptedLLM()
    assert await agent.process(turn("third")) == "success"
    assert (await manager.get("conv-1")).working_memory == "first | third"


async def test_a_long_model_answer_is_cut_to_the_bound(manager):
    long_answer = AsyncMock(return_value={"llm_response": "x" * 10_000, "usage": None})
    agent = WorkingMemoryAgent(type("LLM", (), {"chat": long_answer})(), manager, policy=WorkingMemoryPolicy(max_chars=1500))
    outcome = await agent.handle(turn("hi"))
    assert outcome.ok and len(outcome.working_memory) == 1500 and outcome.working_memory.endswith("...")


@pytest.mark.parametrize(
    "agent_input, problem",
    [
        (AgentInput("no id", {}), "error: invalid input: metadata has no conversation_id"),
        (AgentInput("none", None), "error: invalid input: metadata is None"),
        (AgentInput("list", ["conversation_id"]), "error: invalid input: metadata must be a dict"),
        (AgentInput("bad", {"conversation_id": "a b"}), "error: invalid input: conversation_id 'a b' contains ' '"),
        (AgentInput("", {"conversation_id": "c"}), "error: invalid input: message must be a non-empty str"),
        (AgentInput(None, {"conversation_id": "c"}), "error: invalid input: message must be a non-empty str"),  # type: ignore[arg-type]
        (AgentInput("x" * 20_001, {"conversation_id": "c"}), "error: invalid input: message is 20001 characters"),
        ("just text", "error: invalid input: expected an AgentInput"),
    ],
)
async def test_bad_input_is_an_error_status_and_stores_nothing(manager, agent_input, problem):
    agent = WorkingMemoryAgent(memory_manager=manager)
    outcome = await agent.handle(agent_input)
    assert outcome.status.startswith(problem) and not outcome.stored
    assert isinstance(outcome.error, InvalidConversationError)
    assert await manager.get("c") is None
    assert await agent.process(turn("fine", "c")) == "success"


async def test_without_a_manager_the_agent_builds_memory_and_stores_nothing():
    agent = WorkingMemoryAgent(llm_client=None, memory_manager=None)
    outcome = await agent.handle(turn("Remember that I prefer dark mode"))
    assert outcome.status == "success" and not outcome.stored
    assert outcome.working_memory == "[1] Remember that I prefer dark mode"
    llm_agent = WorkingMemoryAgent(llm_client=ScriptedLLM(), memory_manager=None)
    assert (await llm_agent.handle(turn("hello"))).working_memory == "hello"
    assert (await agent.handle(AgentInput("x", None))).status.startswith("error: ")


async def test_storage_failures_are_error_statuses_and_the_agent_keeps_working():
    flaky = AsyncMock()
    flaky.retrieve.return_value = None
    flaky.store.side_effect = ConnectionError("database went away")
    agent = WorkingMemoryAgent(memory_manager=flaky)
    assert await agent.process(turn("one")) == "error: memory storage failed: database went away"
    flaky.store.side_effect = None
    assert await agent.process(turn("two")) == "success"
    flaky.retrieve.side_effect = OSError("no route")
    assert await agent.process(turn("three")) == "error: memory retrieval failed: no route"
    assert flaky.store.call_count == 2  # nothing written after a failed read

    unreachable = RedisMemoryManager("redis://127.0.0.1:1/0")
    agent = WorkingMemoryAgent(memory_manager=unreachable)
    status = await agent.process(turn("four"))
    assert status.startswith("error: memory retrieval failed: Redis did not answer")
    await unreachable.close()


async def test_turns_of_a_closed_tiered_engine_are_refused_whole(tmp_path):
    api = AgentMemoryAPI(MemoryConfig(redis_url="", data_dir=str(tmp_path)))
    manager = TieredMemoryManager(api)
    agent = WorkingMemoryAgent(memory_manager=manager)
    assert await agent.process(turn("one")) == "success"
    api.close()
    status = await agent.process(turn("two"))
    assert status.startswith("error: memory storage failed: the engine did not archive conversation 'conv-1'")
    memory = await manager.head.get("conv-1")
    assert memory.turn_count == 1 and memory.working_memory == "[1] one"  # the head was put back
    await manager.close()


async def test_the_offline_working_memory_is_bounded_deterministic_and_keeps_the_first_turn(backend: Backend):
    policy = WorkingMemoryPolicy(max_chars=1200, max_line_chars=200, keep_turns=5)
    agents = [WorkingMemoryAgent(memory_manager=backend.open(), policy=policy) for _ in range(2)]
    for agent, conversation_id in zip(agents, ("first-run", "second-run")):
        assert await agent.process(turn("My name is Alice " + "and I talk a lot " * 30, conversation_id)) == "success"
        for i in range(2, 101):
            assert await agent.process(turn(f"message number {i}", conversation_id)) == "success"
    one, two = [await a.memory_manager.get(c) for a, c in zip(agents, ("first-run", "second-run"))]
    assert one.working_memory == two.working_memory  # the same turns give the same memory
    text = one.working_memory
    lines = text.splitlines()
    assert len(text) <= 1200 and lines[0].startswith("[1] My name is Alice") and len(lines[0]) == 4 + 200
    assert lines[-1] == "[100] message number 100"
    shown = [int(line.split("]")[0][1:]) for line in lines[2:]]
    assert shown == list(range(shown[0], 101)) and lines[1] == f"[... {shown[0] - 2} earlier turns omitted ...]"
    assert one.turn_count == 100 and [t.number for t in one.turns] == [96, 97, 98, 99, 100]


def test_folding_keeps_notes_and_numbers_turns_from_the_text():
    policy = WorkingMemoryPolicy()
    text = fold_turn("User likes technical details", 1, "Tell me\n about   APIs", policy)
    assert text == "User likes technical details\n[1] Tell me about APIs"
    assert next_turn_number(text) == 2 and next_turn_number("") == 1
    with pytest.raises(InvalidConversationError):
        WorkingMemoryPolicy(max_chars=500, max_line_chars=500)
    with pytest.raises(InvalidConversationError):
        WorkingMemoryPolicy(keep_turns=-1)


async def test_the_factory_picks_the_manager_by_memory_type(tmp_path):
    built = {
        "memory": create_memory_agent({}),
        "redis": create_memory_agent({"memory_type": "redis", "redis_client": fakeredis.FakeAsyncRedis(), "ttl": 60}),
        "redis-url": create_memory_agent({"memory_type": "redis", "redis_url": TEST_REDIS_URL}),
        "database": create_memory_agent({"memory_type": "database", "db_connection": f"sqlite:///{tmp_path / 'c.sqlite'}"}),
        "tiered": create_memory_agent(
            {"memory_type": "tiered", "memory_config": MemoryConfig(redis_url="", data_dir=str(tmp_path / "engine"))}
        ),
    }
    expected = {"memory": InMemoryManager, "redis": RedisMemoryManager, "redis-url": RedisMemoryManager,
                "database": DatabaseMemoryManager, "tiered": TieredMemoryManager}
    for name, agent in built.items():
        assert type(agent.memory_manager) is expected[name]
        if name != "redis-url":
            assert await agent.process(turn("hello", f"factory-{name}")) == "success"
        await agent.close()
    assert built["redis"].memory_manager.ttl == 60
    llm = ScriptedLLM()
    assert create_memory_agent({"llm_client": llm}).llm_client is llm
    for config, problem in [
        ({"memory_type": "cloud"}, "memory_type must be one of"),
        ({"memory_type": "redis"}, "needs redis_url"),
        ({"memory_type": "database"}, "needs db_connection"),
        ({"model": "gpt", "temperature": 0.7}, "ships no LLM client"),
        ({"redis_ur": "x"}, "unknown create_memory_agent option"),
    ]:
        with pytest.raises(MemoryConfigException, match=problem):
            create_memory_agent(config)


def test_the_public_names_are_exactly_all():
    public = {name for name in dir(conversation) if not name.startswith("_")}
    modules = {"agent", "database_manager", "errors", "factory", "in_memory", "llm", "manager", "redis_manager",
               "state", "stored", "tiered_manager", "working_memory"}
    assert public - modules == set(conversation.__all__)
