"""A deployment is one truth: a key prefix and an LTM bound by one identity, dictionaries named by
their content and kept in both stores (tiers/deployment.py, tiers/dictionaries.py). On the real
Redis and the embedded engine's client, with SQLite files of the test's own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from sqlalchemy import insert

from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from tiers.codec import PayloadCodec, pack_contents
from tiers.deployment import Binding
from tiers.dictionaries import CONTENT_IDS, DictionaryStore, dictionary_id
from tiers.errors import MemoryConfigException, PayloadUnreadableError
from tiers.keys import KeySchema
from tiers.ltm import SQLTier
from tiers.ltm_schema import make_engine, numbered_dictionaries
from tiers.scripts import Scripts

SMALL = {"stm_config": {"memory_limit": 10}, "im_config": {"memory_limit": 20},
         "ltm_config": {"dictionary_samples": 20}, "cleanup_interval": 1_000_000}


def states(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"agent_id": "a", "step_number": i, "data": {"hp": i % 7, "name": f"unit-{i}", "note": "x" * (i % 9)}}
            for i in range(start, start + n)]


@pytest.fixture
def engine_at(redis_client: Any, prefix: str, tmp_path: Path) -> Any:
    """``engine_at(name)``: an engine on the test's Redis and prefix whose LTM is <tmp>/<name>/ltm.sqlite."""
    opened: list[AgentMemoryAPI] = []

    def build(name: str, **options: Any) -> AgentMemoryAPI:
        config = MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / name), **{**SMALL, **options})
        api = AgentMemoryAPI(config, redis_client=redis_client)
        opened.append(api)
        return api

    yield build
    for api in opened:
        api.close()


def redis_keys(client: Any, prefix: str) -> dict[bytes, Any]:
    return {key: client.dump(key) for key in client.scan_iter(match=f"{prefix}:*")}


def test_engines_on_one_prefix_and_one_ltm_are_one_deployment(engine_at: Callable[..., AgentMemoryAPI]) -> None:
    first, second = engine_at("one"), engine_at("one")
    ids = first.store_many(states(60))
    first.force_memory_maintenance("a")  # to IM and LTM, through a trained dictionary
    assert first._tiers.deployment.deployment_id == second._tiers.deployment.deployment_id
    back = second.retrieve_by_time_range("a", 0, 100)
    assert [m["memory_id"] for m in back] == ids
    assert {m["tier"] for m in back} == {"stm", "im", "ltm"}
    assert [m["contents"] for m in back] == [s["data"] for s in states(60)]


def test_an_engine_with_another_ltm_is_refused_before_it_touches_redis(
    engine_at: Callable[..., AgentMemoryAPI], redis_client: Any, prefix: str, tmp_path: Path
) -> None:
    first = engine_at("one")
    first.store_many(states(60))
    first.force_memory_maintenance("a")
    before = redis_keys(redis_client, prefix)
    with pytest.raises(MemoryConfigException) as refused:
        engine_at("two")
    message = str(refused.value)
    assert str(tmp_path / "one" / "ltm.sqlite") in message and str(tmp_path / "two" / "ltm.sqlite") in message
    assert redis_keys(redis_client, prefix) == before
    assert len(first.retrieve_by_time_range("a", 0, 100)) == 60


def test_a_lost_ltm_is_refused_and_adopting_a_new_one_keeps_what_redis_holds(
    engine_at: Callable[..., AgentMemoryAPI], redis_client: Any, prefix: str, tmp_path: Path
) -> None:
    """The dictionaries live in Redis too, so IM payloads stay readable when the LTM that trained
    them is gone; what LTM held is lost, and said so."""
    first = engine_at("one")
    first.store_many(states(60))
    first.force_memory_maintenance("a")
    in_redis = {m["memory_id"]: m["contents"] for m in first.retrieve_by_time_range("a", 0, 100) if m["tier"] != "ltm"}
    first.close()
    for leftover in (tmp_path / "one").glob("ltm.sqlite*"):
        leftover.unlink()
    with pytest.raises(MemoryConfigException, match="holds no deployment"):
        engine_at("one")
    ltm = SQLTier(make_engine(None, tmp_path / "one" / "ltm.sqlite"), prefix)
    Binding(redis_client, KeySchema(prefix), _loaded(redis_client), ltm.engine, prefix, "redis").adopt()
    ltm.close()
    again = engine_at("one")
    back = {m["memory_id"]: m["contents"] for m in again.retrieve_by_time_range("a", 0, 100)}
    assert back == in_redis and any(m["tier"] == "im" for m in again.retrieve_by_time_range("a", 0, 100))


def test_redis_that_lost_the_deployment_is_bound_again_and_keeps_ltm(
    engine_at: Callable[..., AgentMemoryAPI], redis_client: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = engine_at("one")
    ids = first.store_many(states(60))
    first.force_memory_maintenance("a")
    in_ltm = [m["memory_id"] for m in first.retrieve_by_time_range("a", 0, 100) if m["tier"] == "ltm"]
    old = first._tiers.deployment
    first.close()
    redis_client.delete(*redis_client.scan_iter(match=f"{prefix}:*"))
    with caplog.at_level(logging.WARNING, logger="tiers.deployment"):
        again = engine_at("one")
    assert "lost its data" in caplog.text
    now = again._tiers.deployment
    assert now.deployment_id == old.deployment_id and now.incarnation != old.incarnation and now.redis_lost
    assert [m["memory_id"] for m in again.retrieve_by_time_range("a", 0, 100)] == in_ltm
    assert set(in_ltm) < set(ids) and again.get_memory("a", in_ltm[0]) is not None


def test_a_forgotten_agent_is_a_new_incarnation_for_cached_answers_and_indices(
    engine_at: Callable[..., AgentMemoryAPI], redis_client: Any, prefix: str
) -> None:
    """Redis losing one agent's keys starts its version again; as many writes later the version
    equals what a process saw, but the incarnation does not: nothing stale is served."""
    api = engine_at("one")
    old = api.store_many([{"agent_id": "b", "step_number": i, "data": {"position": [i, 0]}} for i in range(5)])
    assert len(api.retrieve_by_time_range("b", 0, 10)) == 5 and len(api.retrieve_nearest("b", (0, 0), k=9)) == 5
    stamp = api._tiers.meta.stamp("b")
    redis_client.delete(*KeySchema(prefix).all_agent_keys("b"))
    new = api.store_many([{"agent_id": "b", "step_number": i, "data": {"position": [i, 1]}} for i in range(5)])
    assert api._tiers.meta.stamp("b").version == stamp.version  # the version alone would match
    assert [m["memory_id"] for m in api.retrieve_by_time_range("b", 0, 10)] == new
    assert {m["memory_id"] for m in api.retrieve_nearest("b", (0, 0), k=9)} == set(new)
    assert not set(old) & {m["memory_id"] for m in api.retrieve_recent("b", 9)}


# -- dictionaries --------------------------------------------------------------------------------------


def _loaded(client: Any) -> Scripts:
    scripts = Scripts(client)
    scripts.load()
    return scripts


@pytest.fixture
def store(redis_client: Any, prefix: str, tmp_path: Path) -> Any:
    engine = make_engine(None, tmp_path / "ltm.sqlite")
    SQLTier(engine, prefix)  # the schema
    Binding(redis_client, KeySchema(prefix), _loaded(redis_client), engine, prefix, "redis").bind()
    yield DictionaryStore(redis_client, KeySchema(prefix), engine, prefix)
    engine.dispose()


def trained(seed: int) -> bytes:
    samples = [pack_contents({"n": f"item-{seed}-{i}", "v": i * seed % 97, "tag": "abc" * (i % 4)}) for i in range(300)]
    return zstandard.train_dictionary(2048, samples).as_bytes()


def test_a_dictionary_is_named_by_its_content_and_read_from_either_store(store: DictionaryStore, redis_client: Any,
                                                                          prefix: str) -> None:
    data = trained(1)
    dict_id = store.save(data)
    assert dict_id == dictionary_id(data) >= CONTENT_IDS and store.latest() == (dict_id, data)
    key = KeySchema(prefix).dictionary(dict_id)
    redis_client.delete(key)
    assert store.load(dict_id) == data and redis_client.get(key) == data  # from LTM, copied back to Redis
    redis_client.set(key, trained(2))  # bytes that are not the dictionary the id names
    assert store.load(dict_id) == data
    assert store.load(dictionary_id(trained(3))) is None


def test_a_payload_whose_dictionary_no_store_holds_is_an_error_not_garbage(store: DictionaryStore) -> None:
    data = trained(4)
    blob = pack_contents({"n": "item-4-7", "v": 28, "tag": "abcabc"})
    store.save(data)
    dict_id, payload = PayloadCodec(load_dictionary=store.load, latest_dictionary=store.latest).compress(blob)
    assert dict_id == dictionary_id(data)
    stranger = PayloadCodec(load_dictionary=lambda _: None)
    with pytest.raises(PayloadUnreadableError, match=str(dict_id)):
        stranger.decompress(dict_id, payload)
    assert PayloadCodec(load_dictionary=store.load).decompress(dict_id, payload) == blob


def test_dictionaries_an_ltm_numbered_itself_still_read_and_the_newest_is_named_by_content(
    store: DictionaryStore,
) -> None:
    old = trained(5)
    with store.engine.begin() as conn:
        conn.execute(insert(numbered_dictionaries).values(dict_id=1, created=0.0, data=old))
    assert store.load(1) == old
    assert store.latest() == (dictionary_id(old), old)
