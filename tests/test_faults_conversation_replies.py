"""Invariant 11 (retry-safe calls) for RedisMemoryManager under a reply lost on the wire.

A LossyProxy (tests/fault_support.py) sits between the manager's async client and the shared test
Redis. It lets the compare-and-set script run in Redis and loses its reply: the connection is
closed (the client sees a ConnectionError) or held silent (the client times out). The call is
sent once more with the same request id and must answer with the version the first call wrote,
so the update returns normally and the turn is recorded once; read straight from Redis, not
through the manager.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio

from fault_support import is_script
from memory.conversation import ConversationMemory, RedisMemoryManager
from support import SINGLE_REDIS_URL, single_redis
from team_support import delete_prefix
from tiers.conversation_redis import CAS
from tiers.errors import MemoryStoreException, OutcomeUnknownError

pytestmark = pytest.mark.slow

HOLD_TIMEOUT = 0.5  # seconds the client waits on a silent connection (mode "hold")
LOST_CAS = is_script(CAS.source)


class Conversations:
    """A RedisMemoryManager whose every command goes through the proxy, and a direct client (not
    through the proxy) to read what Redis holds."""

    def __init__(self, manager: RedisMemoryManager, client: Any, direct: Any):
        self.manager, self.client, self.direct = manager, client, direct

    def held(self, conversation_id: str) -> dict[str, Any]:
        fields = {k.decode(): v.decode() for k, v in self.direct.hgetall(self.manager.key(conversation_id)).items()}
        return {"version": int(fields["version"]), "turn_count": int(fields["turn_count"]),
                "messages": [message for _, message, _ in json.loads(fields["turns"])],
                "working_memory": fields["working_memory"]}


@pytest_asyncio.fixture
async def conversations(lossy_proxy, mode):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = redis.asyncio.Redis(host="127.0.0.1", port=lossy_proxy.port, db=9, protocol=2, socket_connect_timeout=2,
                                 socket_timeout=HOLD_TIMEOUT if mode == "hold" else 5)
    manager = RedisMemoryManager(client=client, key_prefix=prefix)
    direct = single_redis()
    yield Conversations(manager, client, direct)
    await manager.close()
    await client.aclose()
    delete_prefix(direct, prefix)
    direct.close()


def turn(message: str):
    def change(current: ConversationMemory) -> ConversationMemory:
        return current.with_turn(message, f"{current.working_memory}|{message}", 1.0, keep_turns=100)

    return change


def fired(drop: Any) -> None:
    """The proxy did lose a reply: otherwise the test proved nothing."""
    assert drop.fired.is_set(), "the armed reply loss never happened"


async def test_a_turn_whose_reply_is_lost_is_recorded_once(conversations, lossy_proxy, mode):
    manager = conversations.manager
    await manager.update("c", turn("first"))
    drop = lossy_proxy.drop_reply(LOST_CAS, mode=mode)

    memory = await manager.update("c", turn("second"))
    fired(drop)
    assert drop.reply == 2  # the call that ran in Redis wrote version 2
    assert (memory.version, memory.turn_count) == (2, 2)
    assert conversations.held("c") == {"version": 2, "turn_count": 2, "messages": ["first", "second"],
                                       "working_memory": "|first|second"}
    assert manager.conflicts == 0, "the call sent again reported a conflict: the change was applied again"
    assert len(lossy_proxy.commands(LOST_CAS)) == 3  # the first turn's call, the second's and its one re-send


async def test_a_store_whose_reply_is_lost_returns_and_writes_once(conversations, lossy_proxy, mode):
    manager = conversations.manager
    drop = lossy_proxy.drop_reply(LOST_CAS, mode=mode)

    stored = await manager.store({"conversation_id": "c", "working_memory": "User prefers dark mode"})
    fired(drop)
    assert stored.version == 1 and stored.working_memory == "User prefers dark mode"
    assert conversations.held("c") == {"version": 1, "turn_count": 0, "messages": [],
                                       "working_memory": "User prefers dark mode"}
    assert manager.conflicts == 0


@pytest.mark.parametrize("mode", ["hold"])
async def test_a_write_on_top_before_the_re_send_does_not_make_it_a_conflict(conversations, lossy_proxy, mode):
    """Held silent: while the client waits for the lost reply, another process writes a turn on
    top. The call sent again still answers with its own version (the request key, not the
    version, says it ran), so neither turn is applied twice."""
    manager = conversations.manager
    other = RedisMemoryManager(SINGLE_REDIS_URL, key_prefix=manager.key_prefix)  # not through the proxy
    drop = lossy_proxy.drop_reply(LOST_CAS, mode="hold")
    try:
        mine = asyncio.create_task(manager.update("c", turn("mine")))
        while not drop.fired.is_set():
            await asyncio.sleep(0.005)
        theirs = await other.update("c", turn("theirs"))
        memory = await mine
    finally:
        await other.close()
    assert (memory.version, theirs.version) == (1, 2)
    assert conversations.held("c") == {"version": 2, "turn_count": 2, "messages": ["mine", "theirs"],
                                       "working_memory": "|mine|theirs"}
    assert manager.conflicts == 0 and other.conflicts == 0


async def test_a_reply_lost_twice_is_an_unknown_outcome_applied_once(conversations, lossy_proxy, mode):
    manager = conversations.manager
    drops = [lossy_proxy.drop_reply(LOST_CAS, mode=mode), lossy_proxy.drop_reply(LOST_CAS, mode=mode)]

    with pytest.raises(OutcomeUnknownError, match="conversation 'c' may or may not hold this update") as caught:
        await manager.update("c", turn("first"))
    for drop in drops:
        fired(drop)
    assert isinstance(caught.value, MemoryStoreException)
    assert [drop.reply for drop in drops] == [1, 1]  # the call sent again answered as the first did
    assert conversations.held("c")["messages"] == ["first"]
    memory = await manager.update("c", turn("second"))  # the manager works on
    assert memory.version == 2 and conversations.held("c")["messages"] == ["first", "second"]


@pytest.mark.parametrize("mode", ["close"])
async def test_a_write_that_cannot_be_sent_is_a_store_error_not_an_unknown_outcome(conversations, lossy_proxy, mode):
    """Redis goes away between the update's read and its write, and the client knows it (its
    connections are closed): the write never left. (A connection Redis closed unnoticed is not
    told apart from one that broke after the call went out: the call is sent again.)"""
    manager = conversations.manager

    async def redis_goes_away(current: ConversationMemory) -> ConversationMemory:
        lossy_proxy.close()
        await conversations.client.connection_pool.disconnect()
        return current.with_working_memory("never stored", 1.0)

    with pytest.raises(MemoryStoreException, match="Redis did not store conversation 'c'") as caught:
        await manager.update("c", redis_goes_away)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert not lossy_proxy.commands(LOST_CAS)
    assert conversations.direct.exists(manager.key("c")) == 0
