"""TierMemStore, LangGraph's BaseStore on the engine, on both engines.

LangGraph's own store cases, ported (the scenarios and what they expect, in this suite's terms):
libs/checkpoint/tests/test_store.py (InMemoryStore: namespaces, validation, async batching,
vector search), libs/checkpoint/tests/test_inmemory_store_dotted_filters.py,
libs/checkpoint-sqlite/tests/test_store.py (batches, search, list_namespaces, scores) and
test_ttl.py (TTLs, refresh, sweeps; on an injected clock instead of sleeps). Then what LangGraph's
suites leave out: dotted filter keys and nested containment, pages that are never short, replacing
and deleting items held by any tier, refreshes, two writers of one key, namespace escaping, typed
errors, a second engine seeing the first one's writes, and a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchOp,
)
from langgraph.store.base.batch import AsyncBatchedBaseStore

from memory import AgentMemoryAPI, MemoryConfig
from memory.langgraph_store import InvalidStoreNamespaceError, TierMemStore, agent_namespace, namespace_agent
from tiers.errors import InvalidInputError, MemoryConfigException

DIMS = 256
ENGINE = {"search_config": {"vector_dim": DIMS, "text_embedding": "off"}}


class CharEmbeddings(Embeddings):
    """A deterministic embedding with no model: each character's frequency times a fixed random
    direction of its own (seeded by the character), normalised; texts sharing characters point alike."""

    def __init__(self, dims: int = DIMS):
        self.dims = dims

    @functools.cache  # noqa: B019 - one direction per character, for the test's life
    def _direction(self, char: str) -> np.ndarray:
        return np.random.default_rng(ord(char)).normal(0, 1 / math.sqrt(self.dims), self.dims)

    def _embed(self, text: str) -> list[float]:
        counts = Counter(text)
        vector = np.zeros(self.dims)
        for char, count in counts.items():
            vector += count / len(text) * self._direction(char)
        norm = np.linalg.norm(vector)
        return (vector / norm if norm else vector).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def make_store(make_api, clock):
    """Stores on the test's engine (one prefix, one data directory) and its FakeClock."""
    def factory(*, api: AgentMemoryAPI | None = None, **options: Any) -> TierMemStore:
        return TierMemStore(api or make_api(clock=clock, **ENGINE), clock=clock, **options)

    return factory


@pytest.fixture
def store(make_store) -> TierMemStore:
    return make_store()


@pytest.fixture
def embeddings() -> CharEmbeddings:
    return CharEmbeddings()


@pytest.fixture
def vector_store(make_store, embeddings) -> TierMemStore:
    return make_store(index={"dims": DIMS, "embed": embeddings})


class Batched(AsyncBatchedBaseStore):
    """LangGraph's async batching (concurrent calls become one abatch) in front of a TierMemStore."""

    def __init__(self, inner: TierMemStore):
        super().__init__()
        self.inner = inner

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self.inner.abatch(ops)


def keys(items: Iterable[Item]) -> list[str]:
    return [item.key for item in items]


# -- LangGraph's cases: namespaces (libs/checkpoint/tests/test_store.py) ---------------------------------


def test_list_namespaces_basic(store):
    namespaces = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"),
                  ("b", "a", "f"), ("users", "123"), ("users", "456", "settings"), ("admin", "users", "789")]
    for i, namespace in enumerate(namespaces):
        store.put(namespace, f"id_{i}", {"data": f"value_{i:02d}"})
    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b")) == ab
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]


def test_list_namespaces_with_wildcards(store):
    namespaces = [("users", "123"), ("users", "456"), ("users", "789", "settings"), ("admin", "users", "789"),
                  ("guests", "123"), ("guests", "456", "preferences")]
    for i, namespace in enumerate(namespaces):
        store.put(namespace, f"id_{i}", {"data": f"value_{i:02d}"})
    assert store.list_namespaces(prefix=("users", "*")) == [("users", "123"), ("users", "456"), ("users", "789", "settings")]
    assert store.list_namespaces(suffix=("*", "preferences")) == [("guests", "456", "preferences")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    store.put(("admin", "users", "settings", "789"), "foo", {"data": "some_val"})
    assert store.list_namespaces(prefix=("*", "users"), suffix=("settings", "*")) == [("admin", "users", "settings", "789")]


def test_list_namespaces_pagination_max_depth_and_no_conditions(store):
    assert store.list_namespaces() == []  # an empty store
    for i in range(20):
        store.put(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": f"value_{i:02d}"})
    for offset in (0, 5, 15):
        assert store.list_namespaces(prefix=("namespace",), limit=5, offset=offset) == [
            ("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)]
    for i, namespace in enumerate([("a", "b", "c", "d"), ("a", "b", "c", "e"), ("a", "b", "f"), ("a", "g"),
                                   ("h", "i", "j", "k")]):
        store.put(namespace, f"id_{i}", {"data": i})
    assert store.list_namespaces(max_depth=2, limit=5) == [("a", "b"), ("a", "g"), ("h", "i"), ("namespace", "sub_00"),
                                                           ("namespace", "sub_01")]
    assert len(store.list_namespaces(limit=100)) == 25


async def test_cannot_put_an_invalid_namespace_and_langgraph_is_a_label_like_any_other(store):
    doc = {"foo": "bar"}
    for namespace in [(), ("the", "thing.about"), ("some", "fun", "")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(namespace, "foo", doc)
        with pytest.raises(InvalidNamespaceError):
            await store.aput(namespace, "foo", doc)
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "foo"), "bar", doc)
    with pytest.raises(InvalidNamespaceError):
        await store.aput(("langgraph", "foo"), "bar", doc)
    namespace = ("foo", "langgraph", "foo")
    await store.aput(namespace, "bar", doc)
    assert (await store.aget(namespace, "bar")).value == doc
    assert (await store.asearch(namespace, query="bar"))[0].value == doc
    await store.adelete(namespace, "bar")
    assert await store.aget(namespace, "bar") is None
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])  # below the public put, the root label is free
    assert store.get(("langgraph", "foo"), "bar").value == doc
    assert store.search(("langgraph", "foo"))[0].value == doc
    store.delete(("langgraph", "foo"), "bar")
    assert store.get(("langgraph", "foo"), "bar") is None
    batched = Batched(store)
    with pytest.raises(InvalidNamespaceError):
        await batched.aput(("the", "thing.about"), "foo", doc)
    await batched.aput(("valid", "namespace"), "key", doc)
    assert (await batched.aget(("valid", "namespace"), "key")).value == doc
    assert (await batched.asearch(("valid", "namespace")))[0].value == doc
    await batched.adelete(("valid", "namespace"), "key")
    assert await batched.aget(("valid", "namespace"), "key") is None


async def test_async_batching_in_front_of_the_store_keeps_the_last_put_of_a_key(store):
    batched = Batched(store)
    await asyncio.gather(batched.aput(("test",), "same", {"value": "same"}),
                         batched.aput(("test",), "different", {"value": "different"}))
    same, again, different = await asyncio.gather(batched.aget(("test",), "same"), batched.aget(("test",), "same"),
                                                  batched.aget(("test",), "different"))
    assert same == again and same != different and (same.value, different.value) == ({"value": "same"},
                                                                                        {"value": "different"})
    assert await asyncio.gather(batched.aput(("test",), "key", {"value": 1}),
                                batched.aput(("test",), "key", {"value": 2})) == [None, None]
    assert (await batched.aget(("test",), "key")).value == {"value": 2}
    first, second = await asyncio.gather(batched.asearch(("test",), filter={"value": 2}),
                                         batched.asearch(("test",), filter={"value": 2}))
    assert first == second and [item.value for item in first] == [{"value": 2}]


# -- LangGraph's cases: vector search (libs/checkpoint/tests/test_store.py, checkpoint-sqlite) -----------


def test_index_config_is_checked_against_the_engine(make_api, embeddings):
    api = make_api(**ENGINE)
    store = TierMemStore(api, index={"dims": DIMS, "embed": embeddings})
    assert store.index_config["dims"] == DIMS and store.embeddings is embeddings
    with pytest.raises(MemoryConfigException, match="vector_dim"):
        TierMemStore(api, index={"dims": DIMS + 1, "embed": embeddings})
    with pytest.raises(MemoryConfigException, match="embed"):
        TierMemStore(api, index={"dims": DIMS})
    with pytest.raises(MemoryConfigException, match="state_vectors"):
        TierMemStore(make_api(search_config={"vector_dim": DIMS, "state_vectors": True}),
                     index={"dims": DIMS, "embed": embeddings})


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_vector_insert_with_auto_embedding(vector_store, mode):
    docs = [("doc1", {"text": "short text"}), ("doc2", {"text": "longer text document"}),
            ("doc3", {"text": "longest text document here"}), ("doc4", {"description": "text in description field"}),
            ("doc5", {"content": "text in content field"}), ("doc6", {"body": "text in body field"})]
    for key, value in docs:
        if mode == "sync":
            vector_store.put(("test",), key, value)
        else:
            await vector_store.aput(("test",), key, value)
    found = vector_store.search(("test",), query="long text") if mode == "sync" else \
        await vector_store.asearch(("test",), query="long text")
    assert {"doc2", "doc3"} <= set(keys(found)) and all(item.score is not None for item in found)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_vector_update_with_embedding(vector_store, mode):
    async def put(key: str, value: dict, **options: Any) -> None:
        if mode == "sync":
            vector_store.put(("test",), key, value, **options)
        else:
            await vector_store.aput(("test",), key, value, **options)

    async def search(query: str, **options: Any) -> list:
        if mode == "sync":
            return vector_store.search(("test",), query=query, **options)
        return await vector_store.asearch(("test",), query=query, **options)

    await put("doc1", {"text": "zany zebra Xerxes"})
    await put("doc2", {"text": "something about dogs"})
    await put("doc3", {"text": "text about birds"})
    initial = await search("Zany Xerxes")
    assert initial[0].key == "doc1"
    await put("doc1", {"text": "new text about dogs"})
    after = next(item.score for item in await search("Zany Xerxes") if item.key == "doc1")
    assert after < initial[0].score
    assert all(item.score > after for item in await search("new text about dogs") if item.key == "doc1")
    await put("doc4", {"text": "new text about dogs"}, index=False)
    assert "doc4" not in keys(await search("new text about dogs", limit=3))


def test_vector_search_with_filters(vector_store):
    for key, value in [("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
                       ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
                       ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
                       ("doc4", {"text": "blue car", "color": "blue", "score": 3.5})]:
        vector_store.put(("test",), key, value)
    assert keys(vector_store.search(("test",), query="apple", filter={"color": "red"}))[0] == "doc1"
    assert len(vector_store.search(("test",), query="apple", filter={"color": "red"})) == 2
    assert keys(vector_store.search(("test",), query="car", filter={"color": "red"}))[0] == "doc2"
    found = vector_store.search(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert keys(found)[0] == "doc4" and set(keys(found)) == {"doc1", "doc3", "doc4"}
    assert keys(vector_store.search(("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})) == ["doc3"]


async def test_async_batched_vector_search_concurrent(vector_store):
    batched = Batched(vector_store)
    colors, things, scores = ["red", "blue", "green", "yellow", "purple"], ["apple", "car", "house", "book", "phone"], \
        [3.0, 3.5, 4.0, 4.5, 5.0]
    docs = [(f"doc{i}", {"text": f"{colors[i % 5]} {things[i % 5]}", "color": colors[i % 5], "score": scores[i % 5],
                         "index": i}) for i in range(50)]
    await asyncio.gather(*[batched.aput(("test",), key, value) for key, value in docs],
                         *[batched.adelete(("test",), key) for key, _ in docs],
                         *[batched.aput(("test",), key, value) for key, value in docs])
    queries = [("apple", {"color": "red"}), ("car", {"color": "blue"}), ("house", {"color": "green"}),
               ("phone", {"score": {"$gt": 4.99}}), ("book", {"score": {"$lte": 3.5}}),
               ("apple", {"score": {"$gte": 3.0}, "color": "red"}), ("car", {"score": {"$lt": 5.1}, "color": "blue"}),
               ("house", {"index": {"$gt": 25}}), ("phone", {"index": {"$lte": 10}})]
    answers = await asyncio.gather(*[batched.asearch(("test",), query=q, filter=f) for q, f in queries])
    checks = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
    for found, (query, wanted) in zip(answers, queries):
        assert found, (query, wanted)
        for item in found:
            for name, condition in wanted.items():
                if isinstance(condition, dict):
                    assert all(checks[op](float(item.value[name]), float(v)) for op, v in condition.items())
                else:
                    assert item.value[name] == condition
    assert len(vector_store.search(("test",), limit=100)) == 50 == len(memories_of(vector_store, ("test",)))


def test_vector_search_pagination_and_edge_cases(vector_store):
    for i in range(5):
        vector_store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})
    first = vector_store.search(("test",), query="test", limit=2)
    second = vector_store.search(("test",), query="test", limit=2, offset=2)
    everything = vector_store.search(("test",), query="test", limit=10)
    assert len(first) == len(second) == 2 and len(everything) == 5
    assert not set(keys(first)) & set(keys(second)) and keys(everything)[:4] == keys(first) + keys(second)
    scores = [item.score for item in everything]
    assert scores == sorted(scores, reverse=True)
    for query in ["", None, "test " * 100, "test!@#$%^&*()"]:
        assert len(vector_store.search(("test",), query=query)) == 5


def test_scores_are_the_cosine_of_the_texts_vectors(vector_store, embeddings):
    vector_store.put(("test",), "doc", {"key0": "aaa"}, index=["key0", "key1"])
    for query in ["aaa", "bbb", "abcd", "poisson"]:
        (found,) = vector_store.search((), query=query)
        assert found.score == pytest.approx(cosine(embeddings.embed_query("aaa"), embeddings.embed_query(query)), abs=1e-5)


async def test_embed_with_path(make_store, embeddings):
    store = make_store(index={"dims": DIMS, "embed": embeddings, "fields": ["key0", "key1", "key3"]})
    await store.aput(("test",), "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})  # 2 vectors
    await store.aput(("test",), "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})  # 3 vectors
    found = await store.asearch(("test",), query="xxx")
    assert sorted(keys(found)) == ["doc1", "doc2"] and found[0].score == pytest.approx(found[1].score, abs=1e-5)
    best = found[0].score
    found = await store.asearch(("test",), query="uuu")
    assert keys(found) == ["doc2", "doc1"] and found[0].score > found[1].score
    assert found[0].score == pytest.approx(best, abs=1e-5)
    found = await store.asearch(("test",), query="www")  # key2 is not embedded: both score low
    assert len(found) == 2 and all(item.score < best for item in found)

    per_put = make_store(index={"dims": DIMS, "embed": embeddings, "fields": ["key17"]}, prefix="per-put")
    await per_put.aput(("test",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc", "key3": "ddd"}, index=["key0", "key1"])
    await per_put.aput(("test",), "doc4", {"key0": "eee", "key1": "bbb", "key2": "fff", "key3": "ggg"}, index=["key1", "key3"])
    assert keys(await per_put.asearch(("test",), query="aaa"))[0] == "doc3"
    assert keys(await per_put.asearch(("test",), query="ggg"))[0] == "doc4"
    tied = await per_put.asearch(("test",), query="bbb")
    assert sorted(keys(tied)) == ["doc3", "doc4"] and tied[0].score == pytest.approx(tied[1].score, abs=1e-5)
    assert all(item.score < best for item in await per_put.asearch(("test",), query="ccc"))
    await per_put.aput(("test",), "doc5", {"key0": "hhh", "key1": "iii"}, index=False)
    found = await per_put.asearch(("test",), query="hhh")
    assert len(found) == 3 and next(item for item in found if item.key == "doc5").score is None
    assert keys(found)[-1] == "doc5"  # after every item with a vector


def test_non_ascii(vector_store):
    texts = {"1": "这是中文", "2": "これは日本語です", "3": "이건 한국어야", "4": "Это русский", "5": "यह रूसी है"}
    for key, text in texts.items():
        vector_store.put(("user_123", "memories"), key, {"text": text})
    for key, text in texts.items():
        assert vector_store.search(("user_123", "memories"), query=text)[0].key == key


# -- LangGraph's cases: batches, search (libs/checkpoint-sqlite/tests/test_store.py) ---------------------


def test_batch_order(store):
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch([
        GetOp(("test", "foo"), "key1"),
        PutOp(("test", "bar"), "key2", {"data": "value2"}),
        SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
        ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
        GetOp(("test",), "key3"),
    ])
    assert isinstance(results[0], Item) and (results[0].key, results[0].namespace, results[0].value) == (
        "key1", ("test", "foo"), {"data": "value1"})
    assert results[1] is None and [item.key for item in results[2]] == ["key1"]
    assert {("test", "foo"), ("test", "bar")} <= set(results[3]) and results[4] is None
    results = store.batch([
        SearchOp(("test",), filter=None, limit=5, offset=0),
        GetOp(("test", "bar"), "key2"),
        ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
        PutOp(("test",), "key3", {"data": "value3"}),
        GetOp(("test", "foo"), "key1"),
    ])
    assert len(results[0]) == 2 and results[1].value == {"data": "value2"} and results[2] and results[3] is None
    assert results[4].value == {"data": "value1"} and store.get(("test",), "key3").value == {"data": "value3"}


def test_batch_get_put_search_and_list_ops(store):
    assert store.batch([PutOp(("test",), "key1", {"data": "value1"}), PutOp(("test",), "key2", {"data": "value2"}),
                        PutOp(("test",), "key3", None)]) == [None, None, None]
    got = store.batch([GetOp(("test",), "key1"), GetOp(("test",), "key2"), GetOp(("test",), "key3")])
    assert [item and item.value for item in got] == [{"data": "value1"}, {"data": "value2"}, None]
    for namespace, key, value in [(("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
                                  (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
                                  (("test", "baz"), "key3", {"data": "value3", "tag": "b"})]:
        store.put(namespace, key, value)
    tagged, two, foo = store.batch([SearchOp(("test",), filter={"tag": "a"}), SearchOp(("test",), limit=2),
                                    SearchOp(("test", "foo"))])
    assert len(tagged) == 2 and all(item.value["tag"] == "a" for item in tagged)
    assert len(two) == 2 and [item.namespace for item in foo] == [("test", "foo")]
    for namespace in [("test", "documents", "public"), ("test", "documents", "private"), ("test", "images", "public"),
                      ("prod", "documents", "public")]:
        store.put(namespace, "doc", {"content": "x"})
    every, shallow, public = store.batch([
        ListNamespacesOp(), ListNamespacesOp(max_depth=2),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("public",)),))])
    assert len(every) == 8 and all(len(ns) <= 2 for ns in shallow) and len(public) == 3
    assert all(ns[-1] == "public" for ns in public)


def test_search(store):
    for namespace, key, value in [(("test", "docs"), "doc1", {"title": "First Doc", "author": "Alice", "tags": ["important"]}),
                                  (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob", "tags": ["draft"]}),
                                  (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "tags": ["final"]})]:
        store.put(namespace, key, value)
    assert keys(store.search(("test",))) == ["doc1", "doc2", "img1"]  # creation order
    assert {item.namespace for item in store.search(("test", "docs"))} == {("test", "docs")}
    assert keys(store.search(("test",), filter={"author": "Alice"})) == ["doc1", "img1"]
    assert keys(store.search(("test",), filter={"tags": ["draft"]})) == ["doc2"]
    assert len(store.search(("test",), limit=2)) == 2 and keys(store.search(("test",), offset=2)) == ["img1"]
    for namespace, key, _ in [(("test", "docs"), "doc1", 0), (("test", "docs"), "doc2", 0), (("test", "images"), "img1", 0)]:
        store.delete(namespace, key)
    assert store.search(("test",)) == [] and store.list_namespaces() == []


def test_basic_store_operations_and_list_namespaces_operations(vector_store, clock):
    uid = uuid.uuid4().hex
    namespace = (uid, "test", "documents")
    assert vector_store.search((uid,)) == []
    vector_store.put(namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = vector_store.get(namespace, "doc1")
    assert (item.namespace, item.key, item.value) == (namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    clock.advance(1.5)
    vector_store.put(namespace, "doc1", {"title": "Updated Test Document", "content": "Hello, LangGraph!"})
    updated = vector_store.get(namespace, "doc1")
    assert updated.value["title"] == "Updated Test Document"
    assert updated.created_at == item.created_at and (updated.updated_at - item.updated_at).total_seconds() == 1.5
    assert vector_store.get((uid, "test", "other_documents"), "doc1") is None
    vector_store.put(namespace, "doc2", {"title": "Another Document", "content": "Greetings!"})
    assert sorted(keys(vector_store.search((uid, "test"), limit=10))) == ["doc1", "doc2"]
    assert vector_store.list_namespaces(prefix=(uid, "test")) == [namespace]
    vector_store.delete(namespace, "doc1")
    vector_store.delete(namespace, "doc2")
    assert vector_store.get(namespace, "doc1") is None and vector_store.search((uid, "test")) == []

    p = uid
    namespaces = [(p, "test", "documents", "public", p), (p, "test", "documents", "private", p),
                  (p, "test", "images", "public", p), (p, "test", "images", "private", p),
                  (p, "prod", "documents", "public", p), (p, "prod", "documents", "some", "nesting", "public", p),
                  (p, "prod", "documents", "private", p)]
    for ns in namespaces:
        vector_store.put(ns, "dummy", {"content": "dummy"})
    listed = vector_store.list_namespaces
    assert len(listed(prefix=(p, "test"))) == 4 and len(listed(prefix=(p, "test", "documents"))) == 2
    assert len(listed(suffix=("public", p))) == 4 and len(listed(prefix=(p, "test"), suffix=("public", p))) == 2
    assert len(listed(prefix=(p, "*", "documents"))) == 5 and len(listed(suffix=("*", "public", p))) == 4
    assert listed(suffix=("some", "*", "public", p)) == [(p, "prod", "documents", "some", "nesting", "public", p)]
    assert all(len(ns) <= 3 for ns in listed(max_depth=3))
    deep = listed(max_depth=4, prefix=(p, "*", "documents"))
    assert len(set(deep)) == len(deep) == 5
    assert len(listed(prefix=(p,), limit=3)) == 3 and len(listed(prefix=(p,), offset=3)) == len(namespaces) - 3
    assert set(listed(prefix=(p,))) == set(namespaces)


def test_a_filter_key_is_a_path_never_code(store):
    """LangGraph's SQL stores refuse a filter key that could break out of their query with a
    ValueError; here a key is only ever a dot path: one with an empty part is refused as
    InvalidInputError (a ValueError), any other finds only what lies at that path."""
    store.put(("docs",), "public", {"access": "public", "data": "public info"})
    store.put(("docs",), "private", {"access": "private", "data": "secret", "password": "123"})
    assert keys(store.search(("docs",), filter={"access": "public"})) == ["public"]
    with pytest.raises(ValueError, match="dot path"):
        store.search(("docs",), filter={"access') = 'public' OR '1'='1' OR json_extract(value, '$.": "dummy"})
    assert store.search(("docs",), filter={"access') = 'public' OR '1'='1": "dummy"}) == []


def test_inmemory_store_search_supports_dotted_filter_keys(store):
    store.put(("docs",), "hyphen", {"user": {"access-level": "nested"}})
    assert keys(store.search(("docs",), filter={"user.access-level": "nested"})) == ["hyphen"]


# -- LangGraph's cases: TTL (libs/checkpoint-sqlite/tests/test_ttl.py), on the FakeClock ------------------

SECOND = 1 / 60  # TTLs are in minutes


def test_ttl_basic_and_custom_values(make_store, clock):
    store = make_store(ttl={"default_ttl": SECOND})
    store.put(("test",), "item1", {"value": "test"})
    assert store.get(("test",), "item1").value == {"value": "test"}
    clock.advance(2)
    assert store.sweep_ttl() == 1 and store.get(("test",), "item1") is None
    store.put(("test",), "short", {"value": "short"}, ttl=SECOND)
    store.put(("test",), "long", {"value": "long"}, ttl=3 * SECOND)
    clock.advance(2)
    assert store.sweep_ttl() == 1
    assert store.get(("test",), "short") is None and store.get(("test",), "long") is not None
    clock.advance(4)
    assert store.sweep_ttl() == 1 and store.get(("test",), "long") is None


def test_ttl_refresh_on_read(make_store, clock):
    store = make_store(ttl={"default_ttl": SECOND, "refresh_on_read": True})
    store.put(("test",), "item1", {"value": "test"})
    clock.advance(0.5)
    assert store.sweep_ttl() == 0
    assert store.get(("test",), "item1", refresh_ttl=True) is not None  # expires 1 s from now
    clock.advance(0.75)
    assert store.sweep_ttl() == 0
    assert store.get(("test",), "item1").value == {"value": "test"}  # refresh_on_read: again
    clock.advance(1.5)
    assert store.sweep_ttl() == 1 and store.get(("test",), "item1") is None


def test_ttl_override_default(make_store, clock):
    """A put's ttl wins over TTLConfig's default, ttl=None keeps an item for ever. (The checks do
    not refresh, so that the item with the default TTL expires on its own, as the case means.)"""
    store = make_store(ttl={"default_ttl": 5 * SECOND})
    store.put(("test",), "item1", {"value": "override"}, ttl=SECOND)
    store.put(("test",), "item2", {"value": "default"})
    store.put(("test",), "item3", {"value": "permanent"}, ttl=None)
    clock.advance(2)
    assert store.sweep_ttl() == 1
    found = [store.get(("test",), key, refresh_ttl=False) for key in ("item1", "item2", "item3")]
    assert [item and item.value["value"] for item in found] == [None, "default", "permanent"]
    clock.advance(4)
    assert store.sweep_ttl() == 1
    assert store.get(("test",), "item2") is None and store.get(("test",), "item3") is not None


async def test_search_with_ttl_and_asearch_refreshing_one_item(make_store, clock):
    store = make_store(ttl={"default_ttl": SECOND})
    await store.aput(("test",), "item1", {"value": "apple"})
    await store.aput(("test",), "item2", {"value": "banana"})
    assert keys(await store.asearch(("test",), filter={"value": "apple"})) == ["item1"]
    clock.advance(2)
    assert await asyncio.to_thread(store.sweep_ttl) == 2
    assert await store.asearch(("test",), filter={"value": "apple"}) == []

    store = make_store(ttl={"default_ttl": 4 * SECOND, "refresh_on_read": True})
    namespace = ("docs", "user1")
    await store.aput(namespace, "item1", {"text": "content1", "id": 1})
    await store.aput(namespace, "item2", {"text": "content2", "id": 2})
    clock.advance(3)
    assert keys(await store.asearch(namespace, filter={"id": 1}, refresh_ttl=True)) == ["item1"]  # now until 7 s
    clock.advance(2)
    assert store.sweep_ttl() == 1
    assert (await store.aget(namespace, "item1", refresh_ttl=False)).value["text"] == "content1"
    assert await store.aget(namespace, "item2", refresh_ttl=False) is None
    clock.advance(2.5)
    assert store.sweep_ttl() == 1 and await store.aget(namespace, "item1", refresh_ttl=False) is None


def test_ttl_sweeper_thread(make_store, clock):
    store = make_store(ttl={"default_ttl": 2 * SECOND, "sweep_interval_minutes": 0.001})
    agent = namespace_agent(store.prefix, ("test",))
    store.start_ttl_sweeper()
    try:
        store.put(("test",), "item1", {"value": "test"})
        assert store.get(("test",), "item1") is not None
        clock.advance(3)
        deadline = time.monotonic() + 10
        while store.api.retrieve_by_time_range(agent, 0, 2**53 - 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.api.retrieve_by_time_range(agent, 0, 2**53 - 1) == []  # swept, not only hidden
    finally:
        assert store.stop_ttl_sweeper(timeout=10)
    with pytest.raises(MemoryConfigException, match="interval"):
        make_store().start_ttl_sweeper()
    with pytest.raises(MemoryConfigException, match="default_ttl"):
        make_store(ttl={"default_ttl": -1})


# -- beyond LangGraph's suites -------------------------------------------------------------------------


def memories_of(store: TierMemStore, namespace: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every engine memory behind a namespace (items and their vector copies)."""
    return list(store.api.retrieve_by_time_range(namespace_agent(store.prefix, namespace), 0, 2**53 - 1))


def test_expired_items_are_never_returned_or_listed_even_before_a_sweep(make_store, clock, embeddings):
    store = make_store(index={"dims": DIMS, "embed": embeddings})
    store.put(("mixed",), "fleeting", {"text": "gone soon"}, ttl=SECOND)
    store.put(("mixed",), "lasting", {"text": "here to stay"})
    store.put(("fleeting",), "only", {"text": "gone soon"}, ttl=SECOND)
    created = store.get(("mixed",), "fleeting").created_at
    clock.advance(5)
    assert store.get(("mixed",), "fleeting") is None
    assert keys(store.search(("mixed",))) == ["lasting"] == keys(store.search(("mixed",), query="gone soon"))
    assert store.list_namespaces() == [("mixed",)]
    store.put(("mixed",), "fleeting", {"text": "back"})  # a new item: the expired one is not carried on
    assert store.get(("mixed",), "fleeting").created_at > created
    assert len(memories_of(store, ("mixed",))) == 2 and store.sweep_ttl() == 1


def test_a_refresh_rewrites_only_items_with_a_ttl_and_keeps_their_vectors_and_place(make_store, clock, embeddings):
    store = make_store(index={"dims": DIMS, "embed": embeddings, "fields": ["a", "b"]})
    store.put(("n",), "first", {"a": "alpha", "b": "beta"}, ttl=10 * SECOND)
    clock.advance(0.001)
    store.put(("n",), "second", {"a": "gamma"})
    before = {m["memory_id"] for m in memories_of(store, ("n",))}
    ranked = store.search(("n",), query="beta", refresh_ttl=False)
    assert {m["memory_id"] for m in memories_of(store, ("n",))} == before  # refresh_ttl=False: no write
    clock.advance(8)
    assert store.get(("n",), "second") is not None and store.get(("n",), "first") is not None
    after = memories_of(store, ("n",))
    assert len(after) == 3 and {m["memory_id"] for m in after if m["contents"]["key"] == "second"} <= before
    clock.advance(8)  # past the first TTL, not past the refreshed one
    again = store.search(("n",), query="beta")
    assert [(i.key, round(i.score, 5)) for i in again] == [(i.key, round(i.score, 5)) for i in ranked]
    assert keys(store.search(("n",))) == ["first", "second"] and store.sweep_ttl() == 0


@pytest.fixture
def tiered(make_api, make_store, clock):
    """A store whose engine keeps 5 memories in STM and 5 in IM: the rest settle in LTM."""
    api = make_api(clock=clock, cleanup_interval=10**6, stm_config={"memory_limit": 5},
                   im_config={"memory_limit": 5, "low_watermark": 1.0}, **ENGINE)
    return make_store(api=api)


def test_replacing_and_deleting_reach_an_item_in_any_tier(tiered, clock):
    for i in range(20):
        tiered.put(("docs",), f"k{i:02d}", {"n": i, "version": 1})
        clock.advance(0.001)
    tiered.api.force_memory_maintenance()
    held = Counter(m["tier"] for m in memories_of(tiered, ("docs",)))
    assert held == {"stm": 5, "im": 5, "ltm": 10}
    first = {key: tiered.get(("docs",), key) for key in (f"k{i:02d}" for i in range(20))}
    clock.advance(1)
    for i in range(20):
        tiered.put(("docs",), f"k{i:02d}", {"n": i, "version": 2})
    assert tiered.search(("docs",), filter={"version": 1}) == []  # no copy of the old value anywhere
    replaced = tiered.search(("docs",), filter={"version": 2}, limit=100)
    assert keys(replaced) == sorted(first) and len(memories_of(tiered, ("docs",))) == 20
    assert all(item.created_at == first[item.key].created_at < item.updated_at for item in replaced)
    for i in range(0, 20, 2):
        tiered.delete(("docs",), f"k{i:02d}")
    tiered.api.force_memory_maintenance()
    assert keys(tiered.search(("docs",), limit=100)) == [f"k{i:02d}" for i in range(1, 20, 2)]
    assert all(tiered.get(("docs",), f"k{i:02d}") is None for i in range(0, 20, 2))


def test_offset_pages_are_never_short_with_a_filter_or_a_query(make_store, clock, embeddings):
    store = make_store(index={"dims": DIMS, "embed": embeddings, "fields": ["title", "tags[*]"]})
    for i in range(60):
        store.put(("lib", f"shelf{i % 3}"), f"book{i:02d}", {"n": i, "rare": i % 7 == 0, "title": f"volume {i}",
                                                             "tags": [f"t{i % 5}", f"s{i % 4}"]})
        clock.advance(0.001)
    rare = [f"book{i:02d}" for i in range(0, 60, 7)]
    pages = [store.search(("lib",), filter={"rare": True}, limit=2, offset=o) for o in range(0, 12, 2)]
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1, 0] and [k for p in pages for k in keys(p)] == rare
    pages = [store.search(("lib",), limit=7, offset=o) for o in range(0, 63, 7)]
    assert [k for p in pages for k in keys(p)] == [f"book{i:02d}" for i in range(60)]
    assert all(len(p) == 7 for p in pages[:-1])
    pages = [store.search(("lib",), query="volume 3", limit=4, offset=o) for o in range(0, 64, 4)]
    found = [k for p in pages for k in keys(p)]
    assert all(len(p) == 4 for p in pages[:-1]) and sorted(found) == [f"book{i:02d}" for i in range(60)]
    scores = [item.score for p in pages for item in p]
    assert scores == sorted(scores, reverse=True)  # three vectors an item, one place each


def test_filters_reach_into_nested_values_by_dots_and_by_containment(store):
    store.put(("f",), "ada", {"user": {"name": "Ada", "role": {"kind": "admin", "level": 3}}, "tags": ["x", "y"]})
    store.put(("f",), "bob", {"user": {"name": "Bob", "role": {"kind": "guest", "level": 1}}, "tags": ["y"]})
    store.put(("f",), "eve", {"user": "eve", "score": 2.5})
    for wanted, expected in [
        ({"user.role.kind": "admin"}, ["ada"]),
        ({"user": {"role": {"kind": "guest"}}}, ["bob"]),  # a plain nested dict: containment
        ({"user.role.level": {"$gte": 1, "$lt": 3}}, ["bob"]),
        ({"user.role.level": {"$ne": 3}}, ["bob", "eve"]),  # an item without the path is "not equal"
        ({"user.name": {"$in": ["Ada", "Eve"]}}, ["ada"]),
        ({"tags": ["y"]}, ["bob"]),  # a list matches as a whole
        ({"tags.0": "x"}, ["ada"]),  # a path reaches into lists by position
        ({"score": {"$gt": 2}}, ["eve"]),
        ({"user": "eve", "score": 2.5}, ["eve"]),
        ({"user.role": {"$eq": {"kind": "admin", "level": 3}}}, ["ada"]),
        ({"nowhere.at.all": 1}, []),
    ]:
        assert keys(store.search(("f",), filter=wanted)) == expected, wanted


def test_two_threads_putting_one_key_leave_one_item(store):
    rounds = 15

    def writer(name: str) -> None:
        for i in range(rounds):
            store.put(("shared",), "counter", {"writer": name, "i": i})
            store.put(("shared",), f"{name}-{i}", {"writer": name})

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    held = Counter(m["contents"]["key"] for m in memories_of(store, ("shared",)))
    assert held["counter"] == 1 and len(held) == 1 + 2 * rounds and set(held.values()) == {1}
    assert store.get(("shared",), "counter").value["i"] == rounds - 1


def test_namespaces_become_agent_ids_and_back(store):
    odd = [("ünï", "a=b", "*", "x:y/z@w+v-u_t"), ("sp ace", "😀", "tab\there"), ("users", "a%20b", "=41")]
    for namespace in odd:
        agent = namespace_agent(store.prefix, namespace)
        assert agent_namespace(store.prefix, agent) == namespace
        store.put(namespace, "k", {"ns": list(namespace)})
    assert store.list_namespaces() == sorted(odd)
    assert [store.get(ns, "k").value["ns"] for ns in odd] == [list(ns) for ns in odd]
    assert store.list_namespaces(prefix=("*",)) == sorted(odd)  # "*" in a prefix is a wildcard
    assert store.list_namespaces(prefix=("ünï", "a=b", "*")) == [odd[0]]
    too_long = ("x" * 60, "y" * 60)
    with pytest.raises(InvalidStoreNamespaceError, match="limit is 128") as refused:
        store.put(too_long, "k", {"v": 1})
    assert isinstance(refused.value, InvalidInputError) and isinstance(refused.value, InvalidNamespaceError)
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("a", "b.c"), "k")])  # no op may slip a period past the labels' rules
    assert agent_namespace(store.prefix, "another-agent") is None and agent_namespace("other", agent) is None
    for stray in ["p:a=61", "p:a=6", "p:a=ZZ", "p:a..b", "p:", "p:=FF"]:  # not as the store spells a namespace
        assert agent_namespace("p", stray) is None, stray
    store.api.store_agent_state("plain-agent", {"not": "an item"}, step_number=1)
    other = TierMemStore(store.api, prefix="other")
    other.put(("elsewhere",), "k", {"v": 2})
    assert store.list_namespaces() == sorted(odd) and other.list_namespaces() == [("elsewhere",)]
    assert store.search(("elsewhere",)) == [] and keys(other.search(())) == ["k"]


def test_bad_input_is_refused_typed_before_anything_is_written(vector_store, store):
    good = PutOp(("ok",), "k", {"v": 1})
    for bad, message in [
        (PutOp(("ok",), "k2", ["not", "a", "dict"]), "must be a dict"),
        (PutOp(("ok",), 5, {"v": 1}), "key must be a str"),
        (PutOp(("ok",), "k2", {"v": object()}), "serialized"),
        (PutOp(("ok",), "k2", {"v": 1}, ttl=-1), "ttl"),
        (PutOp(("ok",), "k2", {"v": 1}, index="text"), "index"),
        (SearchOp(("ok",), limit=-1), "limit"),
        (SearchOp(("ok",), offset="2"), "offset"),
        (SearchOp(("ok",), filter=["v"]), "filter must be a dict"),
        (SearchOp(("ok",), query=5), "query"),
        (ListNamespacesOp(max_depth=0), "max_depth"),
        (ListNamespacesOp(match_conditions=(MatchCondition("middle", ("a",)),)), "match_type"),
        ("not an op", "unknown operation"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            store.batch([good, bad])
    with pytest.raises(InvalidInputError, match="operator"):
        store.search(("ok",), filter={"v": {"$regex": "."}})
    with pytest.raises(InvalidInputError, match="iterable"):
        store.batch("get me")
    assert store.list_namespaces() == [] and store.api.list_agents() == []
    vector_store.embeddings.embed_documents = lambda texts: [[1.0, 2.0] for _ in texts]
    with pytest.raises(InvalidInputError, match="shape"):
        vector_store.batch([good, PutOp(("ok",), "k2", {"text": "hello"})])
    assert vector_store.list_namespaces() == []
    with pytest.raises(MemoryConfigException, match="AgentMemoryAPI"):
        TierMemStore("not an engine")
    with pytest.raises(MemoryConfigException, match="prefix"):
        TierMemStore(store.api, prefix="with:colon")


def test_a_second_engine_sees_the_first_ones_writes(make_api, make_store, clock):
    first, second = make_store(), make_store(api=make_api(clock=clock, **ENGINE))
    first.put(("team", "notes"), "plan", {"step": 1})
    assert second.get(("team", "notes"), "plan").value == {"step": 1}
    second.put(("team", "notes"), "plan", {"step": 2})
    second.put(("team", "other"), "x", {"step": 0})
    assert first.get(("team", "notes"), "plan").value == {"step": 2}
    assert keys(first.search(("team",), filter={"step": {"$gte": 0}})) == ["plan", "x"]
    first.delete(("team", "notes"), "plan")
    assert second.get(("team", "notes"), "plan") is None and second.list_namespaces() == [("team", "other")]


def test_the_store_on_a_redis_cluster(local_cluster, tmp_path, embeddings):
    config = MemoryConfig(redis_url=local_cluster, key_prefix=f"tlg{uuid.uuid4().hex[:10]}",
                          data_dir=str(tmp_path / "data"), **ENGINE)
    with AgentMemoryAPI(config) as api:
        store = TierMemStore(api, index={"dims": DIMS, "embed": embeddings})
        users = [("users", f"u{i}", "memories") for i in range(12)]  # agents on every primary
        try:
            for i, namespace in enumerate(users):
                store.put(namespace, "fact", {"text": f"likes colour {i}", "i": i}, ttl=None if i % 2 else 60.0)
            assert store.list_namespaces(prefix=("users",)) == sorted(users)
            assert len(store.search(("users",), filter={"i": {"$gte": 6}}, limit=20)) == 6
            best = store.search(("users",), query="likes colour 7", limit=3)
            assert len(best) == 3 and best[0].score >= best[1].score >= best[2].score
            for namespace in users[:6]:
                store.put(namespace, "fact", None)
            assert store.list_namespaces(prefix=("users",)) == sorted(users[6:])
        finally:
            for namespace in users:
                api.clear_agent_memory(namespace_agent(store.prefix, namespace))
