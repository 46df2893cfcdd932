"""Property-based tests of the conversation layer's public calls, on every manager and store
(conversation_backends.py: in memory, Redis real and embedded, SQLite, PostgreSQL, tiered on the
embedded engine and on Redis).

Bad input raises InvalidConversationError (an InvalidInputError), or MemoryConfigException for an
unusable option, and changes nothing: two conversations stored before read back the same after
every refused call (and, for the tiered manager, so do their archived turns).
WorkingMemoryAgent.process never raises: bad input is an ``error: invalid input`` status. Good
messages and working memories round-trip.
"""

from __future__ import annotations

import itertools
from typing import Any

import fakeredis
import pytest
import pytest_asyncio
from hypothesis import example, given
from hypothesis import strategies as st

from bad_values import (
    ARRAYS,
    BAD_SECONDS,
    HASHABLE_NOT_STR,
    HUGE_INTS,
    NON_FINITE,
    NOT_MAPPING,
    NOT_STR,
    NOT_STR_OR_NONE,
    OBJECTS,
    SETTINGS,
    SURROGATE,
    UNENCODABLE,
    bad_counts,
    containing,
    one_bad,
)
from conversation_backends import Backend
from memory.conversation import (
    AgentInput,
    ConversationMemory,
    DatabaseMemoryManager,
    InMemoryManager,
    InvalidConversationError,
    LLMClientError,
    RedisMemoryManager,
    TieredMemoryManager,
    Turn,
    WorkingMemoryAgent,
    WorkingMemoryPolicy,
    create_memory_agent,
)
from memory.conversation.state import MAX_WORKING_MEMORY_CHARS
from memory.validation import MAX_STEP
from tiers.errors import InvalidInputError, MemoryConfigException
from tiers.keys import NAME_ALPHABET

KEPT = ("kept-1", "kept-2")
BAD_INPUT = InvalidConversationError
BAD_OPTION = (InvalidConversationError, MemoryConfigException)


@pytest_asyncio.fixture
async def seeded(backend: Backend) -> tuple[Backend, Any, dict[str, Any]]:
    """A manager holding two conversations, and what they read back as."""
    manager = backend.open()
    agent = WorkingMemoryAgent(memory_manager=manager)
    for message in ("My name is Alice", "I like tea", "Bye"):
        assert await agent.process(AgentInput(message, {"conversation_id": KEPT[0]})) == "success"
    await manager.store({"conversation_id": KEPT[1], "working_memory": "notes only"})
    return backend, manager, await snapshot(backend, manager)


async def snapshot(backend: Backend, manager: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for conversation_id in KEPT:
        memory = await manager.get(conversation_id)
        found[conversation_id] = (memory.working_memory, memory.turn_count, memory.turns, memory.version)
    if backend.api is not None:  # the tiered manager's archive
        for conversation_id in KEPT:
            archived = backend.api.retrieve_by_time_range(manager.agent_id(conversation_id), 0, MAX_STEP - 1)
            found[f"archive {conversation_id}"] = [(m["memory_id"], m["contents"]) for m in archived]
    return found


async def refused(seeded: tuple, call: Any, expected: Any = BAD_INPUT) -> None:
    backend, manager, before = seeded
    with pytest.raises(expected):
        await call(manager)
    assert await snapshot(backend, manager) == before


# -- bad values ------------------------------------------------------------------------------------
BAD_IDS = st.one_of(
    NOT_STR, st.just(""), st.text(alphabet="c", min_size=121, max_size=125),
    containing(st.characters().filter(lambda c: not NAME_ALPHABET.fullmatch(c)) | SURROGATE),
)
BAD_TEXT = st.one_of(NOT_STR, UNENCODABLE, st.just("x" * (MAX_WORKING_MEMORY_CHARS + 1)))
BAD_MESSAGES = st.one_of(NOT_STR, UNENCODABLE, st.text(alphabet=" \n\t", max_size=3), st.just("x" * 20_001))
ODD_KEYS = st.one_of(HASHABLE_NOT_STR, st.text(max_size=8).filter(lambda k: k not in ("conversation_id", "working_memory",
                                                                                     "message")))
BAD_STORE_DATA = st.one_of(
    NOT_MAPPING,
    st.just({"working_memory": "no id"}),
    BAD_IDS.map(lambda cid: {"conversation_id": cid, "working_memory": "x"}),
    BAD_TEXT.map(lambda text: {"conversation_id": KEPT[0], "working_memory": text}),
    ODD_KEYS.map(lambda key: {"conversation_id": KEPT[0], "working_memory": "x", key: 1}),
    st.just({5: 1, None: 2}),
)
BAD_QUERIES = st.one_of(
    NOT_MAPPING, st.just({}), BAD_IDS.map(lambda cid: {"conversation_id": cid}),
    ODD_KEYS.map(lambda key: {"conversation_id": KEPT[0], key: 1}), st.just({5: 1, None: 2}),
)
NOT_A_NUMBER = st.one_of(NON_FINITE, HUGE_INTS.filter(lambda x: abs(x) > 2**1024), st.booleans(), st.text(max_size=2),
                         st.none(), OBJECTS)


def bad_successor(current: ConversationMemory, field: str, value: Any) -> Any:
    """The memory ``current`` would become, with one field wrong."""
    new = current.with_turn("a new turn", "[1] a new turn", 1.0, keep_turns=20)
    if field == "result":
        return value
    if field == "turn":
        return ConversationMemory(**{**new.__dict__, "turns": new.turns + (value,)})
    return ConversationMemory(**{**new.__dict__, field: value})


BAD_SUCCESSORS = st.one_of(
    st.tuples(st.just("result"), st.one_of(NOT_STR, st.text(max_size=3))),
    st.tuples(st.just("conversation_id"), st.one_of(BAD_IDS, st.just("someone-else"))),
    st.tuples(st.just("working_memory"), BAD_TEXT),
    st.tuples(st.just("turn_count"), st.one_of(bad_counts(0), st.just(0))),
    st.tuples(st.just("updated_at"), NOT_A_NUMBER),
    st.tuples(st.just("turns"), st.one_of(st.just([]), NOT_STR_OR_NONE.filter(lambda v: not isinstance(v, tuple)))),
    st.tuples(st.just("turn"), st.one_of(
        NOT_STR, st.builds(Turn, bad_counts(0), st.just("m"), st.just(1.0)),
        st.builds(Turn, st.just(1), BAD_TEXT, st.just(1.0)), st.builds(Turn, st.just(1), st.just("m"), NOT_A_NUMBER))),
)


# -- the managers' calls -------------------------------------------------------------------------------
@SETTINGS
@given(data=BAD_STORE_DATA)
@example(data={"conversation_id": KEPT[0], "working_memory": "\ud800"})
@example(data={"conversation_id": KEPT[0], "working_memory": "x", 5: 1, None: 2})
async def test_bad_store_data_is_refused_and_changes_nothing(seeded, data):
    await refused(seeded, lambda m: m.store(data))


@SETTINGS
@given(query=BAD_QUERIES)
async def test_a_bad_query_is_refused(seeded, query):
    await refused(seeded, lambda m: m.retrieve(query))


@SETTINGS
@given(conversation_id=BAD_IDS, call=st.sampled_from(["get", "delete", "update", "history", "ttl_remaining"]))
async def test_a_bad_conversation_id_is_refused_by_every_call(seeded, conversation_id, call):
    manager = seeded[1]

    async def change(current):
        return current.with_working_memory("changed", 1.0)

    calls = {"get": lambda m: m.get(conversation_id), "delete": lambda m: m.delete(conversation_id),
             "update": lambda m: m.update(conversation_id, change)}
    if isinstance(manager, TieredMemoryManager):
        calls["history"] = lambda m: m.history(conversation_id)
    if isinstance(manager, RedisMemoryManager):
        calls["ttl_remaining"] = lambda m: m.ttl_remaining(conversation_id)
    await refused(seeded, calls.get(call, calls["get"]))


@SETTINGS
@given(bad=BAD_SUCCESSORS)
async def test_an_update_returning_a_bad_memory_writes_nothing(seeded, bad):
    field, value = bad

    async def change(current):
        return bad_successor(current, field, value)

    await refused(seeded, lambda m: m.update(KEPT[0], change))


@SETTINGS
@given(change=st.one_of(NOT_STR, st.text(max_size=3)))
async def test_an_update_with_something_not_callable_is_refused(seeded, change):
    await refused(seeded, lambda m: m.update(KEPT[0], change))


@SETTINGS
@given(first=st.one_of(bad_counts(0, MAX_STEP - 1), st.none()), last=st.one_of(bad_counts(0, MAX_STEP - 1)))
async def test_a_bad_turn_range_of_the_archive_is_refused(api, first, last):
    manager = TieredMemoryManager(api)
    await manager.store({"conversation_id": KEPT[0], "working_memory": "kept"})
    for kwargs in ({"first_turn": first}, {"first_turn": 1, "last_turn": last}):
        with pytest.raises(InvalidInputError):  # turn numbers are the engine's steps
            await manager.history(KEPT[0], **kwargs)
    assert (await manager.get(KEPT[0])).working_memory == "kept"
    await manager.close()


# -- the agent never raises -------------------------------------------------------------------------------
BAD_METADATA = st.one_of(
    st.none(), NOT_MAPPING, st.just({}), BAD_IDS.map(lambda cid: {"conversation_id": cid}),
)
BAD_AGENT_INPUTS = st.one_of(
    BAD_MESSAGES.map(lambda message: AgentInput(message, {"conversation_id": KEPT[0]})),
    BAD_METADATA.map(lambda metadata: AgentInput("hello", metadata)),
    NOT_STR, st.text(max_size=5), st.just({"message": "hi", "metadata": {"conversation_id": KEPT[0]}}),
)


@SETTINGS
@given(agent_input=BAD_AGENT_INPUTS)
@example(agent_input=AgentInput("\ud800", {"conversation_id": KEPT[0]}))  # raised UnicodeEncodeError in Redis and SQL
@example(agent_input=AgentInput("a\x00b", {"conversation_id": KEPT[0]}))  # PostgreSQL text refuses NUL
async def test_bad_input_to_the_agent_is_an_error_status_and_stores_nothing(seeded, agent_input):
    backend, manager, before = seeded
    agent = WorkingMemoryAgent(memory_manager=manager)
    outcome = await agent.handle(agent_input)
    assert outcome.status.startswith("error: invalid input: ") and not outcome.stored
    assert isinstance(outcome.error, BAD_INPUT)
    assert (await agent.process(agent_input)).startswith("error: invalid input: ")
    assert await snapshot(backend, manager) == before


class OddModel:
    """A model whose answer no backend can store, or that is no answer at all."""

    def __init__(self, answer: Any):
        self.answer = answer

    async def chat(self, messages: Any) -> Any:
        return self.answer


@SETTINGS
@given(answer=st.one_of(NOT_MAPPING, st.builds(lambda text: {"llm_response": text}, st.one_of(
    NOT_STR, UNENCODABLE, st.text(alphabet=" \n", max_size=3)))))
async def test_a_model_answer_no_backend_can_store_is_an_llm_error(seeded, answer):
    backend, manager, before = seeded
    agent = WorkingMemoryAgent(OddModel(answer), manager)
    outcome = await agent.handle(AgentInput("hello", {"conversation_id": KEPT[0]}))
    assert outcome.status.startswith("error: llm: ") and isinstance(outcome.error, LLMClientError)
    assert await snapshot(backend, manager) == before


# -- constructors and options --------------------------------------------------------------------------
BAD_MANAGER_OPTIONS = one_bad({}, conflict_timeout=BAD_SECONDS, clock=st.one_of(st.integers(), st.text(max_size=2)))
BAD_TTLS = BAD_SECONDS.filter(lambda v: v is not None)  # None: never expire


@SETTINGS
@given(kwargs=st.one_of(BAD_MANAGER_OPTIONS, one_bad({}, ttl=BAD_TTLS, max_conversations=bad_counts(1))))
def test_bad_in_memory_manager_options_are_refused(kwargs):
    with pytest.raises(BAD_INPUT):
        InMemoryManager(**kwargs)


@SETTINGS
@given(kwargs=st.one_of(
    BAD_MANAGER_OPTIONS.map(lambda kwargs: {"client": fakeredis.FakeAsyncRedis(), **kwargs}),
    one_bad({"client": fakeredis.FakeAsyncRedis()}, ttl=BAD_TTLS, key_prefix=st.one_of(NOT_STR, st.just(""), UNENCODABLE),
            client=st.one_of(NOT_STR_OR_NONE, st.text(max_size=3))),
    st.one_of(NOT_STR_OR_NONE, UNENCODABLE, st.sampled_from(["", "not a url", "http://x"])).map(
        lambda url: {"redis_url": url}),
    st.just({}), st.just({"redis_url": "redis://127.0.0.1/0", "client": fakeredis.FakeAsyncRedis()}),
))
def test_bad_redis_manager_options_are_refused(kwargs):
    with pytest.raises(BAD_OPTION):
        RedisMemoryManager(**kwargs)


@SETTINGS
@given(kwargs=st.one_of(
    BAD_MANAGER_OPTIONS, one_bad({}, namespace=st.one_of(NOT_STR, st.just(""), UNENCODABLE), threads=bad_counts(1, 1024)),
    st.one_of(NOT_STR_OR_NONE, UNENCODABLE, st.sampled_from(["", "not a url", "nodb+nodriver://x/y", "sqlite://"])).map(
        lambda db: {"db": db}),
))
def test_bad_database_manager_options_are_refused(tmp_path, kwargs):
    kwargs = {"db": f"sqlite:///{tmp_path / 'c.sqlite'}", **kwargs}
    with pytest.raises(BAD_OPTION):
        DatabaseMemoryManager(**kwargs)


@SETTINGS
@given(kwargs=st.one_of(BAD_MANAGER_OPTIONS, one_bad(
    {}, agent_prefix=st.one_of(NOT_STR, st.text(min_size=9, max_size=12), UNENCODABLE),
    priority=st.one_of(st.floats().filter(lambda x: not 0 <= x <= 1), HUGE_INTS, st.booleans(), st.none(), OBJECTS),
    rebuild_turns=bad_counts(1), head=st.one_of(NOT_STR_OR_NONE, st.text(max_size=2)),
    api=st.one_of(NOT_STR, st.text(max_size=3)))))
def test_bad_tiered_manager_options_are_refused(api, kwargs):
    kwargs = {"api": api, **kwargs}
    with pytest.raises(BAD_INPUT):
        TieredMemoryManager(**kwargs)


NOT_CALLABLE = st.one_of(st.integers(), st.text(max_size=2), st.lists(st.integers(), max_size=1), OBJECTS)


@SETTINGS
@given(kwargs=one_bad({}, llm_client=NOT_CALLABLE.filter(lambda v: v is not None), memory_manager=NOT_CALLABLE,
                      policy=st.one_of(NOT_CALLABLE, st.just(0)), clock=NOT_CALLABLE))
def test_bad_agent_options_are_refused(kwargs):
    with pytest.raises(BAD_INPUT):
        WorkingMemoryAgent(**kwargs)


@SETTINGS
@given(kwargs=one_bad({}, max_chars=bad_counts(1, MAX_WORKING_MEMORY_CHARS), max_line_chars=bad_counts(1, 1950),
                      max_message_chars=bad_counts(1, MAX_WORKING_MEMORY_CHARS),
                      keep_turns=bad_counts(0, MAX_WORKING_MEMORY_CHARS)))
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(BAD_INPUT):
        WorkingMemoryPolicy(**kwargs)


@SETTINGS
@given(config=st.one_of(
    NOT_MAPPING,
    ODD_KEYS.filter(lambda key: key not in ("memory_type", "llm_client", "policy", "redis_url", "redis_client",
                                            "key_prefix", "ttl", "db_connection", "namespace", "memory_api",
                                            "memory_config")).map(lambda key: {key: 1}),
    st.one_of(st.text(max_size=8).filter(lambda t: t not in ("memory", "redis", "database", "tiered")), NOT_STR_OR_NONE,
              ARRAYS).map(lambda memory_type: {"memory_type": memory_type}),
    st.sampled_from([{"memory_type": "redis"}, {"memory_type": "database"}, {"memory_type": "tiered", "memory_config": 5},
                     {"memory_type": "tiered", "memory_api": 5}, {"memory_type": "memory", "ttl": -1},
                     {"memory_type": "redis", "redis_client": fakeredis.FakeAsyncRedis(), "ttl": float("nan")},
                     {"memory_type": "database", "db_connection": 5}, {"llm_client": 5}, {"policy": "strict"}]),
))
def test_bad_agent_configs_are_refused(config):
    with pytest.raises(BAD_OPTION):
        create_memory_agent(config)


# -- good input round-trips --------------------------------------------------------------------------
MESSAGES = st.text(min_size=1, max_size=200).filter(lambda t: t.strip() and "\x00" not in t)
_conversations = itertools.count()


@SETTINGS
@given(messages=st.lists(MESSAGES, min_size=1, max_size=3), working_memory=st.text(max_size=200).filter(
    lambda t: "\x00" not in t))
async def test_messages_and_working_memories_come_back_as_they_were(seeded, messages, working_memory):
    backend, manager, before = seeded
    conversation_id = f"round-trip-{next(_conversations)}"
    agent = WorkingMemoryAgent(memory_manager=manager)
    for message in messages:
        assert await agent.process(AgentInput(message, {"conversation_id": conversation_id})) == "success"
    memory = await manager.get(conversation_id)
    assert [t.message for t in memory.turns] == messages and memory.turn_count == len(messages)
    await manager.store({"conversation_id": conversation_id, "working_memory": working_memory})
    (found,) = await manager.retrieve({"conversation_id": conversation_id})
    assert found.working_memory == working_memory and [t.message for t in found.turns] == messages
    if isinstance(manager, TieredMemoryManager):
        assert [t.message for t in await manager.history(conversation_id)] == messages
    assert await snapshot(backend, manager) == before
