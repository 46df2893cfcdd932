"""A LangGraph store on tiermem: ``TierMemStore(api)`` is a ``langgraph.store.base.BaseStore``
(the ``langgraph`` extra: ``pip install 'tiermem[langgraph]'``), so a graph compiled with
``store=TierMemStore(api)`` keeps its long-term memory in the engine's three tiers.

How items sit in the engine:

    namespace ("users", "ada")  an agent, "<prefix>:users.ada": the labels joined by ".", every
                                UTF-8 byte outside [A-Za-z0-9_:@/+-] written =XX (hex), at most
                                128 characters in all (a longer one is refused)
    item (namespace, key)       a state memory of that agent, found by its key (an indexed attribute):
                                {"key", "value", "part": 0, "vectors", "created_at", "updated_at",
                                "expires_at", "ttl"} (times in unix seconds, ttl in minutes or None);
                                its step is created_at in microseconds, so a search without a
                                query answers in creation order, and a put keeps created_at
    its vectors (IndexConfig)   one per text the item's fields hold: the first on the item's memory,
                                each further one on a copy of the item (part 1, 2, ...), so a
                                filtered query ranks every copy and the best one scores the item

A filter's keys are dot paths into the value (``{"user.role": "admin"}`` reaches
``value["user"]["role"]``), a nested dict matches as containment, and every filter is answered from
the engine's attribute index, as are lookups by key and expiry. Puts and deletes of one namespace
run under its agent's maintenance lease (``AgentMemoryAPI.exclusive``): two writers of one key
leave one item, and no tier move brings a deleted or replaced memory back. Within a batch, reads
see the store as it was before the batch's puts, and of several puts of one key the last counts
(as LangGraph's InMemoryStore does). Expired items are never returned or listed; ``sweep_ttl``
deletes them, and ``start_ttl_sweeper`` does so every ``sweep_interval_minutes``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from memory import validation
from memory._engine.agent_memory import AgentMemoryAPI
from tiers.errors import InvalidInputError, MemoryAPIException, MemoryConfigException, MissingExtraError
from tiers.keys import AGENT_ID_LIMIT

try:
    from langgraph.store.base import (
        BaseStore,
        Embeddings,
        GetOp,
        IndexConfig,
        InvalidNamespaceError,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
        ensure_embeddings,
        get_text_at_path,
        tokenize_path,
        validate_op_namespace,
    )
except ImportError as exc:  # the extra is optional: say how to get it
    raise MissingExtraError("langgraph", "memory.langgraph_store needs the package langgraph") from exc

log = logging.getLogger(__name__)

NEVER = 1e18  # the expires_at of an item without a TTL (unix seconds, ~3e10 years)
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_:@/+-")
_PREFIX = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPED = re.compile(r"(?:=[0-9A-F]{2})+")  # the UTF-8 bytes of one or more escaped characters
_VECTORS = ("full_vector", "compressed_vector", "abstract_vector")  # finest first


class InvalidStoreNamespaceError(InvalidInputError, InvalidNamespaceError):
    """A namespace the store refuses: LangGraph's rules (labels are non-empty strings without
    periods), or one that does not fit in an agent id. Both a tiermem InvalidInputError and
    LangGraph's InvalidNamespaceError."""


# -- namespaces as agent ids ---------------------------------------------------------------------
def namespace_agent(prefix: str, namespace: tuple[str, ...]) -> str:
    """The agent id that holds a namespace's items."""
    labels = []
    for label in namespace:
        if isinstance(label, str):
            label = "".join(c if c in _PLAIN else "".join(f"={b:02X}" for b in c.encode()) for c in label)
        labels.append(label)
    agent = f"{prefix}:{'.'.join(labels)}"
    if len(agent) > AGENT_ID_LIMIT:
        raise InvalidStoreNamespaceError(f"namespace {namespace!r} takes {len(agent)} characters as an agent id "
                                         f"({agent[:40]}...); the limit is {AGENT_ID_LIMIT}")
    return agent


def agent_namespace(prefix: str, agent: str) -> tuple[str, ...] | None:
    """The namespace an agent id holds, or None for an agent that is not one of the store's (not
    under its prefix, or not as namespace_agent spells a namespace)."""
    head = f"{prefix}:"
    if not agent.startswith(head) or len(agent) == len(head):
        return None
    try:
        labels = tuple(_ESCAPED.sub(lambda m: bytes.fromhex(m[0].replace("=", "")).decode(), part)
                       for part in agent[len(head):].split("."))
        return labels if all(labels) and namespace_agent(prefix, labels) == agent else None
    except (UnicodeDecodeError, InvalidStoreNamespaceError):
        return None


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether a namespace starts (prefix) or ends (suffix) with the condition's path, "*" matching any label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[len(namespace) - len(path):]
    return all(wanted == "*" or wanted == label for wanted, label in zip(path, part))


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class _Put(NamedTuple):
    agent: str
    op: PutOp
    texts: list[str]  # what IndexConfig's fields (or the op's index) hold, to embed


class _Plan(NamedTuple):
    """A batch checked before any of it runs: its reads, its puts (one per key), what to embed."""

    results: list[Result]
    reads: list[tuple[int, Op]]
    puts: dict[tuple[str, str], _Put]
    queries: list[str]


class TierMemStore(BaseStore):
    """LangGraph's ``BaseStore`` on an :class:`AgentMemoryAPI` (module docstring: the layout).

    ``index``: LangGraph's IndexConfig (``dims`` must be the engine's ``search_config.vector_dim``,
    ``embed`` an Embeddings object or function, ``fields`` default ``["$"]``) for ``search(query=...)``;
    ``ttl``: LangGraph's TTLConfig (minutes); ``prefix``: starts every agent id of the store's
    namespaces; ``clock``: unix seconds for created_at, updated_at and expiry (default: the engine's).
    The store does not close the engine it is given.
    """

    supports_ttl = True

    def __init__(self, api: AgentMemoryAPI, *, index: IndexConfig | None = None, ttl: TTLConfig | None = None,
                 prefix: str = "langgraph", clock: Callable[[], float] | None = None):
        if not isinstance(api, AgentMemoryAPI):
            raise MemoryConfigException(f"api must be an AgentMemoryAPI, got {validation.shown(api)}")
        if not isinstance(prefix, str) or not 0 < len(prefix) <= 32 or not set(prefix) <= _PREFIX:
            raise MemoryConfigException(f"prefix must be 1-32 of letters, digits, _ and -, got {validation.shown(prefix)}")
        self.api, self.prefix = api, prefix
        self._clock = clock if clock is not None else api.clock
        self.ttl_config = self._ttl_config(ttl)
        self.index_config = None if index is None else dict(index)
        self.embeddings: Embeddings | None = None
        self._fields: list[tuple[str, Any]] = []
        if index is not None:
            self._index(index)
        self._sweeper: tuple[threading.Thread, threading.Event] | None = None

    def _index(self, index: IndexConfig) -> None:
        search = self.api.config.search_config
        if index.get("dims") != search.vector_dim:
            raise MemoryConfigException(f"IndexConfig dims {index.get('dims')!r} must be the engine's "
                                        f"search_config.vector_dim, {search.vector_dim}")
        if search.state_vectors:
            raise MemoryConfigException("a TierMemStore with an index needs search_config.state_vectors off "
                                        "(the state encoder would give every item a vector of its own)")
        if index.get("embed") is None:
            raise MemoryConfigException("IndexConfig needs embed: an Embeddings object or an embedding function")
        self.embeddings = ensure_embeddings(index["embed"])
        self._fields = [(path, "$" if path == "$" else tokenize_path(path)) for path in index.get("fields") or ["$"]]

    @staticmethod
    def _ttl_config(ttl: TTLConfig | None) -> TTLConfig | None:
        if ttl is None:
            return None
        if not isinstance(ttl, Mapping):
            raise MemoryConfigException(f"ttl must be a TTLConfig (a dict), got {validation.shown(ttl)}")
        for name in ("default_ttl", "sweep_interval_minutes"):
            if ttl.get(name) is not None:
                validation.number(ttl[name], f"TTLConfig {name}", MemoryConfigException, low=1e-9)
        return ttl

    # -- the two methods of BaseStore ---------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        plan = self._plan(ops)
        embeddings = self.embeddings
        texts = [text for put in plan.puts.values() for text in put.texts]
        vectors: list[list[float]] = embeddings.embed_documents(texts) if texts and embeddings is not None else []
        queries: list[list[float]] = [embeddings.embed_query(q) for q in plan.queries] if embeddings is not None else []
        return self._run(plan, self._checked_vectors(vectors, len(texts)), dict(zip(plan.queries, queries)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """As :meth:`batch`, embedding through the embedder's async methods; the engine's calls
        (it is synchronous) run in a worker thread, so the event loop never waits on Redis or SQL."""
        plan = self._plan(ops)
        embeddings = self.embeddings
        texts = [text for put in plan.puts.values() for text in put.texts]
        vectors: list[list[float]] = []
        queries: list[list[float]] = []
        if embeddings is not None:
            vectors = await embeddings.aembed_documents(texts) if texts else []
            queries = list(await asyncio.gather(*(embeddings.aembed_query(q) for q in plan.queries)))
        checked = self._checked_vectors(vectors, len(texts))
        return await asyncio.to_thread(self._run, plan, checked, dict(zip(plan.queries, queries)))

    def _checked_vectors(self, vectors: Sequence[Any], texts: int) -> list[np.ndarray | None]:
        if len(vectors) != texts:
            raise InvalidInputError(f"the embedder gave {len(vectors)} vectors for {texts} texts")
        return [self._vector(vector) for vector in vectors]

    # -- checking a batch -----------------------------------------------------------------------
    def _plan(self, ops: Iterable[Op]) -> _Plan:
        if isinstance(ops, (str, bytes, Mapping)) or not isinstance(ops, Iterable):
            raise InvalidInputError(f"batch takes an iterable of ops, got {validation.shown(ops)}")
        plan = _Plan([], [], {}, [])
        for op in ops:
            position = len(plan.results)
            plan.results.append(None)
            if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
                raise InvalidInputError(f"op {position}: unknown operation {validation.shown(op)}")
            try:
                validate_op_namespace(op)
            except InvalidNamespaceError as exc:
                raise InvalidStoreNamespaceError(f"op {position}: {exc}") from None
            if isinstance(op, PutOp):
                put = self._checked_put(op)
                if put is not None:
                    plan.puts.pop((put.agent, op.key), None)  # the last put of a key counts, in its place
                    plan.puts[(put.agent, op.key)] = put
                continue
            if isinstance(op, GetOp):
                self._key(op.key)
                if op.namespace:
                    namespace_agent(self.prefix, op.namespace)  # one too long is refused before anything runs
            elif isinstance(op, SearchOp):
                self._checked_search(op)
                if op.query and self.embeddings is not None and op.query not in plan.queries:
                    plan.queries.append(op.query)
            else:
                self._page(op.limit, op.offset)
                for condition in op.match_conditions or ():
                    if condition.match_type not in ("prefix", "suffix"):
                        raise InvalidInputError(f"op {position}: match_type must be 'prefix' or 'suffix', "
                                                f"got {validation.shown(condition.match_type)}")
                if op.max_depth is not None:
                    validation.count(op.max_depth, "max_depth", minimum=1)
            plan.reads.append((position, op))
        return plan

    def _key(self, key: Any) -> str:
        return validation.text(key, "key", self.api.config.max_payload_bytes)

    def _checked_put(self, op: PutOp) -> _Put | None:
        """The put checked, with the texts to embed; None for a delete from the empty namespace
        (which holds nothing)."""
        self._key(op.key)
        if not op.namespace:
            if op.value is None:
                return None
            raise InvalidStoreNamespaceError("a put needs a namespace of at least one label")
        agent = namespace_agent(self.prefix, op.namespace)
        if op.value is None:
            return _Put(agent, op, [])
        if not isinstance(op.value, Mapping):
            raise InvalidInputError(f"the value of {op.key!r} must be a dict (None deletes), got {validation.shown(op.value)}")
        validation.contents(dict(op.value), self.api.config.max_payload_bytes)
        if op.ttl is not None:
            validation.number(op.ttl, "ttl (minutes)", low=1e-9, high=validation.MAX_SECONDS / 60)
        index = op.index
        if index is not None and index is not False and (
                not isinstance(index, list) or not all(isinstance(path, str) for path in index)):
            raise InvalidInputError(f"index must be False, None or a list of paths, got {validation.shown(index)}")
        if self.embeddings is None or index is False:
            return _Put(agent, op, [])
        fields = self._fields if index is None else [(path, "$" if path == "$" else tokenize_path(path)) for path in index]
        return _Put(agent, op, [text for _, path in fields for text in get_text_at_path(dict(op.value), path)])

    def _checked_search(self, op: SearchOp) -> None:
        self._page(op.limit, op.offset)
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInputError(f"query must be a str or None, got {validation.shown(op.query)}")
        wanted = self._filter(op.filter)
        if wanted:  # refused now (an unknown operator, say), whatever the store holds
            validation.attributes(wanted, self.api.config.max_payload_bytes)

    @staticmethod
    def _page(limit: Any, offset: Any) -> None:
        validation.count(limit, "limit")
        validation.count(offset, "offset")

    @staticmethod
    def _filter(wanted: Any) -> dict[str, Any]:
        """A LangGraph filter as the engine's conditions on the item's value: dot paths into it,
        plain nested dicts spread into their paths (containment, as InMemoryStore matches)."""
        if wanted is None:
            return {}
        if not isinstance(wanted, Mapping):
            raise InvalidInputError(f"filter must be a dict or None, got {validation.shown(wanted)}")
        out: dict[str, Any] = {}

        def add(path: str, value: Any) -> None:
            if isinstance(value, Mapping) and value and not any(isinstance(k, str) and k.startswith("$") for k in value):
                for name, inner in value.items():
                    if not isinstance(name, str) or not name:
                        raise InvalidInputError(f"filter keys must be non-empty str, got {validation.shown(name)}")
                    add(f"{path}.{name}", inner)
            elif path in out:
                raise InvalidInputError(f"the filter names {path[len('value.'):]!r} twice")
            else:
                out[path] = value

        for name, value in wanted.items():
            if not isinstance(name, str) or not name:
                raise InvalidInputError(f"filter keys must be non-empty str, got {validation.shown(name)}")
            add(f"value.{name}", value)
        return out

    # -- running a batch ----------------------------------------------------------------------------
    def _run(self, plan: _Plan, vectors: Sequence[np.ndarray | None], queries: Mapping[str, Any]) -> list[Result]:
        now = self._clock()
        results, refresh = plan.results, defaultdict[str, dict[str, str]](dict)
        spaces = functools.cache(self._namespaces)  # listed once a batch, if it searches or lists
        gets: dict[str, list[tuple[int, GetOp]]] = defaultdict(list)
        for position, op in plan.reads:
            if isinstance(op, GetOp):
                if op.namespace:
                    gets[namespace_agent(self.prefix, op.namespace)].append((position, op))
            elif isinstance(op, SearchOp):
                query = queries.get(op.query) if op.query else None
                vector = None if query is None else self._vector(query)
                results[position] = self._search(op, vector, now, refresh, spaces())
            elif isinstance(op, ListNamespacesOp):
                results[position] = self._list(op, now, spaces())
        for agent, wanted in gets.items():
            found = _newest(self._by_key(agent, [op.key for _, op in wanted], self._conditions(now, part=0)), now)
            for position, op in wanted:
                memory = found.get(op.key)
                if memory is not None:
                    results[position] = self._item(memory)
                    if op.refresh_ttl and memory["contents"]["ttl"] is not None:
                        refresh[agent][op.key] = memory["memory_id"]
        for agent, keyed in refresh.items():
            self._refresh(agent, keyed, now)
        self._write(plan.puts, vectors, now)
        return results

    def _vector(self, raw: Any) -> np.ndarray | None:
        """An embedding as float32, None when it is all zeros (nothing to compare)."""
        vector = np.asarray(raw, dtype=np.float64)
        dims = self.api.config.search_config.vector_dim
        if vector.shape != (dims,) or not np.all(np.isfinite(vector)):
            raise InvalidInputError(f"the embedder gave a vector of shape {vector.shape}; the index takes {dims} "
                                    "finite numbers")
        return vector.astype(np.float32) if np.any(vector) else None

    def _item(self, memory: Mapping[str, Any]) -> Item:
        contents = memory["contents"]
        return Item(value=contents["value"], key=contents["key"], namespace=self._namespace_of(memory),
                    created_at=_when(contents["created_at"]), updated_at=_when(contents["updated_at"]))

    def _search_item(self, memory: Mapping[str, Any], score: float | None) -> SearchItem:
        contents = memory["contents"]
        return SearchItem(self._namespace_of(memory), contents["key"], contents["value"], _when(contents["created_at"]),
                          _when(contents["updated_at"]), score)

    def _namespace_of(self, memory: Mapping[str, Any]) -> tuple[str, ...]:
        return agent_namespace(self.prefix, memory["agent_id"]) or ()

    def _conditions(self, now: float, wanted: Mapping[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        return {**(wanted or {}), "expires_at": {"$gt": now}, **more}

    def _by_key(self, agent: str, keys: Sequence[str], conditions: Mapping[str, Any] | None = None) -> list[Any]:
        """The memories of these keys (every part, expired or not, unless ``conditions`` narrow)."""
        unique = list(dict.fromkeys(keys))
        out: list[Any] = []
        for start in range(0, len(unique), 1024):  # $in takes 1024 values
            out += self.api.retrieve_by_attributes(agent, {**(conditions or {}), "key": {"$in": unique[start:start + 1024]}})
        return out

    # -- namespaces -----------------------------------------------------------------------------
    def _namespaces(self) -> list[tuple[str, tuple[str, ...]]]:
        """(agent, namespace) of every namespace holding items, expired or not, in namespace order."""
        found = []
        for agent in self.api.list_agents():
            namespace = agent_namespace(self.prefix, agent)
            if namespace is not None:
                found.append((agent, namespace))
        return sorted(found, key=lambda pair: pair[1])

    def _holds_live(self, agent: str, now: float) -> bool:
        return bool(self.api.retrieve_by_attributes(agent, self._conditions(now, part=0), limit=1))

    def _list(self, op: ListNamespacesOp, now: float, spaces: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        wanted = op.offset + op.limit
        shown: list[tuple[str, ...]] = []
        for agent, namespace in spaces:
            if len(shown) >= wanted:
                break
            if not all(_matches(condition, namespace) for condition in conditions):
                continue
            name = namespace if op.max_depth is None else namespace[: op.max_depth]
            if (not shown or shown[-1] != name) and self._holds_live(agent, now):
                shown.append(name)  # in order already: truncating sorted names keeps them sorted
        return shown[op.offset : wanted]

    # -- search ---------------------------------------------------------------------------------
    def _search(self, op: SearchOp, vector: np.ndarray | None, now: float, refresh: dict[str, dict[str, str]],
                spaces: list[tuple[str, tuple[str, ...]]]) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        agents = [agent for agent, namespace in spaces if namespace[: len(prefix)] == prefix]
        if not agents or op.limit == 0:
            return []
        conditions = self._conditions(now, self._filter(op.filter))
        found: list[tuple[Mapping[str, Any], float | None]]
        if vector is None:
            found = [(m, None) for m in self._query(agents, {**conditions, "part": 0}).top(op.limit, offset=op.offset)]
        else:
            found = self._ranked(agents, conditions, vector, op.offset, op.limit)
        if op.refresh_ttl:
            for memory, _ in found:
                if memory["contents"]["ttl"] is not None:
                    refresh[memory["agent_id"]][memory["contents"]["key"]] = memory["memory_id"]
        return [self._search_item(memory, score) for memory, score in found]

    def _query(self, agents: list[str], conditions: Mapping[str, Any]) -> Any:
        builder = self.api.query(agents[0]) if len(agents) == 1 else self.api.query_agents(agents)
        return builder.where(conditions)

    def _ranked(self, agents: list[str], conditions: Mapping[str, Any], vector: np.ndarray, offset: int,
                limit: int) -> list[tuple[Mapping[str, Any], float | None]]:
        """Items by their best vector's cosine similarity to the query's, then those without a
        vector (in creation order): the page ``offset``, ``offset + limit`` of that order."""
        wanted = offset + limit
        fetch = wanted
        while True:
            hits = self._query(agents, conditions).similar_to_embedding(vector).top(fetch)
            best: dict[tuple[str, str], Mapping[str, Any]] = {}
            for memory in hits:  # best first: an item's first copy is its best
                best.setdefault((memory["agent_id"], memory["contents"]["key"]), memory)
            if len(best) >= wanted or len(hits) < fetch:
                break
            fetch *= 2  # items with several vectors took places: look further
        ranked = [(m, float(m["similarity_score"])) for m in best.values()]
        page: list[tuple[Mapping[str, Any], float | None]] = list(ranked[offset:wanted])
        if len(ranked) < wanted:
            rest = self._query(agents, {**conditions, "part": 0, "vectors": 0}).top(
                wanted - max(offset, len(ranked)), offset=max(0, offset - len(ranked)))
            page += [(m, None) for m in rest]
        return page

    # -- writes -------------------------------------------------------------------------------------
    def _write(self, puts: Mapping[tuple[str, str], _Put], vectors: Sequence[np.ndarray | None], now: float) -> None:
        by_agent: dict[str, list[tuple[_Put, list[np.ndarray]]]] = defaultdict(list)
        at = 0
        for put in puts.values():
            own, at = vectors[at : at + len(put.texts)], at + len(put.texts)
            by_agent[put.agent].append((put, [v for v in own if v is not None]))
        for agent, mine in by_agent.items():
            with self.api.exclusive(agent):
                held = self._by_key(agent, [put.op.key for put, _ in mine])
                previous = _newest(held, now)
                records: list[dict[str, Any]] = []
                for put, own in mine:
                    if put.op.value is not None:
                        # a new item a microsecond after the one before it: creation order holds within a batch
                        fresh = now + len(records) * 1e-6
                        records += self._records(agent, put.op, own, previous.get(put.op.key), now, fresh)
                if records:
                    self.api.store_many(records)
                self.api.delete_memories(agent, [m["memory_id"] for m in held])

    def _records(self, agent: str, op: PutOp, vectors: list[np.ndarray], previous: Mapping[str, Any] | None,
                 now: float, fresh: float) -> list[dict[str, Any]]:
        """The memories of one item: its own, then a copy per vector after the first; created
        ``fresh`` unless it replaces an item."""
        created = fresh if previous is None else previous["contents"]["created_at"]
        ttl = None if op.ttl is None else float(op.ttl)
        contents = {"key": op.key, "value": dict(op.value or {}), "part": 0, "vectors": len(vectors),
                    "created_at": created, "updated_at": now, "expires_at": NEVER if ttl is None else now + 60 * ttl,
                    "ttl": ttl}
        return _copies(agent, contents, vectors)

    def _refresh(self, agent: str, keyed: Mapping[str, str], now: float) -> None:
        """Move the expiry of items read with refresh_ttl to ``now`` + their TTL: each is written
        again with its vectors, unless a put replaced it since it was read."""
        with self.api.exclusive(agent):
            held = self._by_key(agent, list(keyed))
            mains = {m["contents"]["key"]: m["contents"] for m in held if m["memory_id"] in keyed.values()}
            records, stale = [], []
            for key, contents in mains.items():
                mine = [m for m in held if m["contents"]["key"] == key and m["contents"]["updated_at"] == contents["updated_at"]]
                mine.sort(key=lambda m: m["contents"]["part"])
                renewed = {**contents, "expires_at": now + 60 * contents["ttl"]}
                records += _copies(agent, renewed, [_finest(m) for m in mine if _finest(m) is not None])
                stale += [m["memory_id"] for m in mine]
            if records:
                self.api.store_many(records)
                self.api.delete_memories(agent, stale)

    # -- expiry -------------------------------------------------------------------------------------
    def sweep_ttl(self) -> int:
        """Delete every expired item; returns how many there were."""
        now, swept = self._clock(), 0
        for agent, _ in self._namespaces():
            expired = self.api.retrieve_by_attributes(agent, {"expires_at": {"$lte": now}})
            if expired:
                swept += len({m["contents"]["key"] for m in expired if m["contents"]["part"] == 0})
                self.api.delete_memories(agent, [m["memory_id"] for m in expired])
        return swept

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> None:
        """Sweep expired items every ``sweep_interval_minutes`` (default: TTLConfig's) in a thread,
        until :meth:`stop_ttl_sweeper` or :meth:`close`. A failed sweep is logged and tried again."""
        interval = sweep_interval_minutes
        if interval is None and self.ttl_config is not None:
            interval = self.ttl_config.get("sweep_interval_minutes")
        if interval is None:
            raise MemoryConfigException("no sweep interval: pass sweep_interval_minutes or set it in TTLConfig")
        seconds = 60 * validation.number(interval, "sweep_interval_minutes", MemoryConfigException, low=1e-9)
        if self._sweeper is not None:
            return
        stop = threading.Event()

        def sweep() -> None:
            while not stop.wait(seconds):
                try:
                    self.sweep_ttl()
                except MemoryAPIException as exc:
                    log.warning("the TTL sweep failed, tried again in %.0f s: %s", seconds, exc)

        thread = threading.Thread(target=sweep, name="tiermem-ttl-sweeper", daemon=True)
        self._sweeper = (thread, stop)
        thread.start()

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper; False if it was still sweeping after ``timeout`` seconds."""
        if self._sweeper is None:
            return True
        thread, stop = self._sweeper
        stop.set()
        thread.join(timeout)
        if thread.is_alive():
            return False
        self._sweeper = None
        return True

    def close(self) -> None:
        """Stop the sweeper (the engine stays open: its owner closes it)."""
        self.stop_ttl_sweeper()

    def __enter__(self) -> TierMemStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _copies(agent: str, contents: Mapping[str, Any], vectors: Sequence[Any]) -> list[dict[str, Any]]:
    """The engine records of an item: the item itself with the first vector, a copy per further one."""
    step = round(contents["created_at"] * 1_000_000)
    records = [{"agent_id": agent, "step_number": step, "data": {**contents, "part": 0, "vectors": len(vectors)}}]
    if vectors:
        records[0]["embedding"] = vectors[0]
    for part, vector in enumerate(vectors[1:], 1):
        records.append({"agent_id": agent, "step_number": step, "embedding": vector,
                        "data": {**contents, "part": part, "vectors": len(vectors)}})
    return records


def _newest(memories: Iterable[Mapping[str, Any]], now: float) -> dict[str, Mapping[str, Any]]:
    """key -> the memory of its unexpired item among these (the newest, should a put cut short
    by a crash have left two)."""
    found: dict[str, Mapping[str, Any]] = {}
    for memory in memories:
        contents = memory["contents"]
        seen = found.get(contents["key"])
        if contents["part"] == 0 and contents["expires_at"] > now and (
                seen is None or seen["contents"]["updated_at"] < contents["updated_at"]):
            found[contents["key"]] = memory
    return found


def _finest(memory: Mapping[str, Any]) -> list[float] | None:
    """A memory's vector at the finest resolution its tier keeps."""
    embeddings = memory.get("embeddings") or {}
    return next((embeddings[name] for name in _VECTORS if embeddings.get(name) is not None), None)


__all__ = ["InvalidStoreNamespaceError", "TierMemStore", "agent_namespace", "namespace_agent"]
