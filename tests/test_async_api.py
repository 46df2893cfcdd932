"""AsyncAgentMemoryAPI on its own event loop: many coroutines on one instance, cancellation, its
errors against the sync API's, the event loop kept free while Redis answers, and a reply lost on
the wire. (The engine's behaviour itself is tested over both APIs: conftest.py's api_flavour.)
On the test Redis (a cluster on a cluster run), with a few checks of the embedded engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio
import redis.asyncio.cluster
from sqlalchemy.ext.asyncio import create_async_engine

from fault_support import all_of, contains, is_command
from memory import AgentMemoryAPI, AsyncAgentMemoryAPI, MemoryConfig
from support import ON_CLUSTER, TEST_POSTGRES_URL, TEST_REDIS_URL, real_redis
from team_support import delete_prefix
from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryNotFoundError,
    OutcomeUnknownError,
)


def async_client() -> Any:
    """A redis.asyncio client of the test Redis: a RedisCluster on a cluster run."""
    if ON_CLUSTER:
        first = TEST_REDIS_URL.split("://", 1)[1].split(",")[0]
        return redis.asyncio.cluster.RedisCluster.from_url(f"redis://{first}")
    return redis.asyncio.Redis.from_url(TEST_REDIS_URL)


@pytest.fixture
def config(tmp_path: Any) -> Iterator[Callable[..., MemoryConfig]]:
    """MemoryConfig on the real test Redis, a prefix of the test's own (deleted afterwards), SQLite in tmp_path."""
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"

    def make(**options: Any) -> MemoryConfig:
        options.setdefault("redis_url", TEST_REDIS_URL)
        return MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data"),
                            search_config={"text_embedding": "off"}, **options)

    yield make
    delete_prefix(client, prefix)
    client.close()


def rows(memories: Any) -> list[tuple[Any, ...]]:
    return [(m["memory_id"], m["step_number"], m["contents"], m["tier"]) for m in memories]


async def test_many_coroutines_on_one_instance_answer_as_the_sync_api(config):
    cfg = config(stm_config={"memory_limit": 8}, im_config={"memory_limit": 16}, cleanup_interval=10)

    async def agent(api: AsyncAgentMemoryAPI, name: str) -> list[str]:
        ids = []
        for step in range(40):
            ids.append(await api.store_agent_state(name, {"step": step, "who": name, "position": [step, 1]}, step))
            if step % 10 == 9:  # queries between the stores, interleaved with the other agents'
                assert [m["step_number"] for m in await api.retrieve_by_time_range(name, 0, step)] == list(range(step + 1))
        return ids

    async with AsyncAgentMemoryAPI(cfg) as api:
        names = [f"agent-{i}" for i in range(12)]
        stored = dict(zip(names, await asyncio.gather(*(agent(api, name) for name in names))))
        answers = await asyncio.gather(*(api.retrieve_by_time_range(name, 0, 39) for name in names))
        found = await asyncio.gather(*(api.query(name).where({"step": {"$gte": 35}}).all() for name in names))
        assert sorted(await api.list_agents()) == sorted(names)
    with AgentMemoryAPI(cfg) as sync:
        for name, answer, where in zip(names, answers, found):
            assert [m["memory_id"] for m in answer] == stored[name]
            assert rows(answer) == rows(sync.retrieve_by_time_range(name, 0, 39))
            assert rows(where) == rows(sync.query(name).where({"step": {"$gte": 35}}).all())
        assert {m["tier"] for name in names for m in sync.retrieve_by_time_range(name, 0, 39)} == {"stm", "im", "ltm"}


async def test_two_engines_on_one_event_loop_interleave_safely(config):
    """Two instances on one thread: their calls interleave at every wait (once-script slots,
    connections and locks are each engine's own)."""
    cfg = config()
    async with AsyncAgentMemoryAPI(cfg) as first, AsyncAgentMemoryAPI(cfg) as second:

        async def writer(api: AsyncAgentMemoryAPI, parity: int) -> list[str]:
            ids = []
            for step in range(parity, 60, 2):
                ids.append(await api.store_agent_state("shared", {"step": step}, step))
                assert (await api.get_memory("shared", ids[-1]))["contents"] == {"step": step}  # a once-script
            return ids

        evens, odds = await asyncio.gather(writer(first, 0), writer(second, 1))
        for api in (first, second):
            assert [m["step_number"] for m in await api.retrieve_by_time_range("shared", 0, 59)] == list(range(60))
        assert {m["memory_id"] for m in await first.retrieve_recent("shared", 60)} == set(evens) | set(odds)


async def test_the_event_loop_runs_while_the_engine_waits_for_redis(config):
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    async with AsyncAgentMemoryAPI(config()) as api:
        await api.store_agent_state("a", {"warm": True}, 0)  # connected, scripts loaded
        running = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        for step in range(1, 201):
            await api.store_agent_state("a", {"step": step}, step)
        running.cancel()
    assert ticks >= 200  # each store's round trip let the ticker run at least once


async def test_a_call_cancelled_mid_flight_took_effect_whole_and_the_engine_goes_on(config):
    records = [{"agent_id": f"c{i % 4}", "data": {"i": i}, "step_number": i} for i in range(4000)]
    async with AsyncAgentMemoryAPI(config()) as api:
        await api.store_agent_state("c0", {"warm": True}, 10_000)
        storing = asyncio.create_task(api.store_many(records))
        queued = asyncio.create_task(api.store_agent_state("queued", {"never": True}, 1))  # waits for its turn
        for _ in range(3):
            await asyncio.sleep(0)
        assert not storing.done()
        storing.cancel()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await storing
        with pytest.raises(asyncio.CancelledError):
            await queued
        counts = [len(await api.retrieve_by_time_range(f"c{a}", 0, 3999)) for a in range(4)]
        assert counts in ([0] * 4, [1000] * 4)  # every agent's records or none of them, never a part
        assert "queued" not in await api.list_agents()
        memory_id = await api.store_agent_state("after", {"fine": True}, 1)
        assert (await api.get_memory("after", memory_id))["contents"] == {"fine": True}


async def test_the_text_model_runs_off_the_event_loop_and_answers_as_in_the_sync_api(config):
    threads: set[int] = set()

    def model(texts: list[str]) -> list[list[float]]:  # a deterministic stand-in: letter counts
        threads.add(threading.get_ident())
        return [[1e-3 + text.count(letter) for letter in "abcdefghijklmnop"] for text in texts]

    cfg = config()
    cfg = dataclasses.replace(cfg, search_config=dataclasses.replace(cfg.search_config, text_model=model,
                                                                     text_embedding="on_query"))
    words = ["bridge", "market", "river", "forest"]
    async with AsyncAgentMemoryAPI(cfg) as api:
        for i in range(20):
            await api.store_agent_interaction("t", {"content": f"{words[i % 4]} {i}"}, i)
        found = await api.search_by_content("t", "a market by the river", k=5)
    assert threads and threading.get_ident() not in threads
    with AgentMemoryAPI(cfg) as sync:
        assert rows(found) == rows(sync.search_by_content("t", "a market by the river", k=5))


BAD_CALLS = [
    ("store_agent_state", ("bad id!", {"x": 1}, 1)),
    ("store_agent_state", ("a", {"x": 1}, -1)),
    ("store_agent_state", ("a", "not a dict", 1)),
    ("store_many", ([{"agent_id": "a", "data": {}, "step_number": 1, "memory_type": "dream"}],)),
    ("retrieve_by_time_range", ("a", 5, 1)),
    ("retrieve_recent", ("a", -1)),
    ("retrieve_by_attributes", ("a", {"x": {"$near": 1}})),
    ("retrieve_by_location", ("a", (1, 2), -1.0)),
    ("set_importance_score", ("a", "a-nothing-1", 0.5)),
    ("set_importance_score", ("a", "a-nothing-1", 7.0)),
    ("get_memory", ("a b", "a-x-1")),
    ("set_cache_ttl", (-1,)),
]


@pytest.mark.parametrize(("name", "args"), BAD_CALLS, ids=[f"{name}-{i}" for i, (name, _) in enumerate(BAD_CALLS)])
async def test_errors_are_the_sync_apis_type_and_message(config, name, args):
    cfg = config()
    with AgentMemoryAPI(cfg) as sync:
        with pytest.raises(MemoryAPIException) as expected:
            getattr(sync, name)(*args)
    async with AsyncAgentMemoryAPI(cfg) as api:
        with pytest.raises(MemoryAPIException) as raised:
            await getattr(api, name)(*args)
    assert type(raised.value) is type(expected.value) and str(raised.value) == str(expected.value)


async def test_queries_unknown_memories_and_a_closed_engine_answer_as_the_sync_api(config):
    api = AsyncAgentMemoryAPI(config())
    with pytest.raises(MemoryAPIException, match="open this AsyncAgentMemoryAPI first"):
        api.query("a")
    await api.open()
    assert await api.get_memory("a", "a-nothing-1") is None
    with pytest.raises(MemoryNotFoundError):
        await api.set_importance_score("a", "a-nothing-1", 0.5)
    with pytest.raises(InvalidInputError, match="needs top"):
        await api.query("a").similar_to({"x": 1}).all()
    space = api.get_memory_space("a")
    await api.store_agent_state("a", {"x": 1}, 3)
    assert [m["step_number"] for m in await space.retrieve_recent_states(5)] == [3]
    await api.aclose()
    await api.aclose()  # twice is fine
    with pytest.raises(MemoryAPIException, match="is closed"):
        await api.store_agent_state("a", {"x": 1}, 1)


async def test_threads_and_blocking_clients_are_refused(config, tmp_path):
    with pytest.raises(MemoryConfigException, match="maintenance_mode"):
        AsyncAgentMemoryAPI(config(maintenance_mode="background"))
    with pytest.raises(MemoryConfigException, match="text_embedding"):
        AsyncAgentMemoryAPI(MemoryConfig(search_config={"text_embedding": "background"}))
    with pytest.raises(MemoryConfigException, match="not an AsyncEngine"):
        AsyncAgentMemoryAPI(config(), ltm_engine=create_async_engine(TEST_POSTGRES_URL))  # connects to nothing
    sync_client = real_redis()
    with pytest.raises(MemoryConfigException, match="redis.asyncio"):
        await AsyncAgentMemoryAPI(config(redis_url=None), redis_client=sync_client).open()
    sync_client.close()
    with pytest.raises(MemoryConfigException, match="plain TCP"):
        await AsyncAgentMemoryAPI(config(redis_url="rediss://127.0.0.1:6390/0")).open()


async def test_a_client_and_a_postgresql_ltm_of_the_callers_own(config, postgres_engine):
    """The long-term store's SQL (moves by COPY, reads, index rebuilds) runs in the engine's SQL thread."""
    client = async_client()
    cfg = config(redis_url=None, stm_config={"memory_limit": 5}, im_config={"memory_limit": 10})
    records = [{"agent_id": "pg", "data": {"i": i, "position": [i, 0]}, "step_number": i} for i in range(60)]
    async with AsyncAgentMemoryAPI(cfg, redis_client=client, ltm_engine=postgres_engine) as api:
        assert api.mode == "redis"
        ids = await api.store_many(records)
        report = await api.force_memory_maintenance("pg")
        assert report.im_to_ltm > 0
        answer = await api.retrieve_by_time_range("pg", 0, 59)
        near = await api.retrieve_by_location("pg", (3, 0), 1.5)
        assert [m["memory_id"] async for m in api.export_memories(["pg"])] == ids
    await client.aclose()
    sync_client = real_redis()
    with AgentMemoryAPI(cfg, redis_client=sync_client, ltm_engine=postgres_engine) as sync:
        assert rows(answer) == rows(sync.retrieve_by_time_range("pg", 0, 59))
        assert rows(near) == rows(sync.retrieve_by_location("pg", (3, 0), 1.5))
        assert {m["tier"] for m in answer} == {"stm", "im", "ltm"}
    sync_client.close()


async def test_the_embedded_engine_through_a_fakeredis_async_client(tmp_path):
    server = fakeredis.FakeServer()
    cfg = MemoryConfig(key_prefix="emb", data_dir=str(tmp_path / "data"))
    async with AsyncAgentMemoryAPI(cfg, redis_client=fakeredis.FakeAsyncRedis(server=server)) as api:
        ids = await api.store_many([{"agent_id": "a", "data": {"i": i}, "step_number": i} for i in range(5)])
        assert [m["memory_id"] for m in await api.retrieve_by_time_range("a", 0, 4)] == ids
    async with AsyncAgentMemoryAPI(MemoryConfig(redis_url="", data_dir=str(tmp_path / "own"))) as api:
        assert api.mode == "embedded"
        await api.store_agent_state("b", {"x": 1}, 1)
        assert len(await api.retrieve_recent("b")) == 1


@pytest.mark.parametrize("mode", ["close", "hold"])
async def test_a_store_whose_reply_is_lost_is_stored_once(lossy_proxy, mode, tmp_path):
    """Invariant 11 over the async API: the same transport, the same retry forms (see
    tests/test_faults_lost_replies.py for the sync API)."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = redis.asyncio.Redis(host="127.0.0.1", port=lossy_proxy.port, db=9, protocol=2,
                                 socket_timeout=0.5 if mode == "hold" else 5)
    cfg = MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data"), cleanup_interval=10_000,
                       search_config={"text_embedding": "off"})
    direct = real_redis()
    try:
        async with AsyncAgentMemoryAPI(cfg, redis_client=client) as api:
            await api.store_agent_state("solo", {"warm": True}, 0)
            drop = lossy_proxy.drop_reply(all_of(is_command("EVALSHA"), contains(b"lost-put")), mode=mode)
            try:
                memory_id = await api.store_agent_state("solo", {"probe": "lost-put"}, 1)
            except OutcomeUnknownError:
                memory_id = None
            assert drop.fired.is_set()
            stored = await api.retrieve_by_time_range("solo", 1, 1)
            if memory_id is None:  # not sent again: it ran at most once
                assert len(stored) <= 1
            else:  # sent again in its retry form: it ran once
                assert [(m["memory_id"], m["contents"]) for m in stored] == [(memory_id, {"probe": "lost-put"})]
    finally:
        await client.aclose()
        delete_prefix(direct, prefix)
        direct.close()


# the sync API's public names the async one spells otherwise, or leaves out, and why
NOT_MIRRORED = {
    "close": "aclose",
    "exclusive": "a block across several calls holds the agent's lease in one thread; the async API's calls share one",
}


def test_every_public_call_of_the_sync_api_has_its_async_form():
    sync = {name for name in dir(AgentMemoryAPI) if not name.startswith("_")}
    mirrored = {name for name in dir(AsyncAgentMemoryAPI) if not name.startswith("_")}
    assert sync - mirrored == set(NOT_MIRRORED)
    assert "aclose" in mirrored


async def test_deletes_run_on_the_async_api_as_on_the_sync_one(config):
    cfg = config(stm_config={"memory_limit": 4}, im_config={"memory_limit": 8}, cleanup_interval=10**9)
    async with AsyncAgentMemoryAPI(cfg) as api:
        ids = [await api.store_agent_state("a", {"step": step}, step) for step in range(20)]
        await api.force_memory_maintenance("a")
        held = {m["memory_id"]: m["tier"] for m in await api.retrieve_by_time_range("a", 0, 19)}
        gone = [next(i for i in ids if held[i] == tier) for tier in ("stm", "im", "ltm")]
        assert await api.delete_memory("a", gone[0]) is True
        assert await api.delete_memories("a", gone[1:] + ["a-missing"]) == 2
        assert await api.delete_memory("a", gone[0]) is False
        kept = [m["memory_id"] for m in await api.retrieve_by_time_range("a", 0, 19)]
    assert kept == [i for i in ids if i not in gone]
    with AgentMemoryAPI(cfg) as sync:
        assert [m["memory_id"] for m in sync.retrieve_by_time_range("a", 0, 19)] == kept
