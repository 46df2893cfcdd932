"""AgentMemoryAPI against a plain-dict reference model, driven by seeded random operations.

diskcache checks its ``Index`` against a ``dict`` this way. Tier limits are tiny and the clock
jumps past the TTLs, so memories keep moving STM -> IM -> LTM and (when read often) back; whatever
tier a memory sits in, every query must give exactly the model's answer: the same ids in the same
order with the same contents. In the two-engine runs both engines share the Redis prefix and the
SQLite file, as two processes would, and each operation goes to either one (invariant 5: a query
sees every write that finished before it). A failure names the seed and the operation to replay.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest

from memory import AgentMemoryAPI
from tiers.errors import MemoryNotFoundError

AGENTS = ("ant", "bee", "cat", "dog.1")
TYPES = ("state", "action", "interaction")
STM_TTL, IM_TTL = 30.0, 120.0  # seconds, on the FakeClock
LIMITS = {
    "cleanup_interval": 40,  # automatic maintenance runs too, between the forced ones
    "stm_config": {"memory_limit": 8, "ttl": STM_TTL},
    "im_config": {"memory_limit": 16, "ttl": IM_TTL},
    "ltm_config": {"dictionary_samples": 20},
}
OPERATIONS = 400
MISSING = object()


@dataclass(frozen=True)
class Memo:
    agent_id: str
    step: int
    memory_type: str
    importance: float
    contents: Any
    timestamp: float


class Model:
    """What the engine must answer, computed the obvious way from a dict."""

    def __init__(self) -> None:
        self.memories: dict[str, Memo] = {}

    def of(self, agent_id: str, memory_type: str | None = None) -> list[str]:
        return [mid for mid, m in self.memories.items()
                if m.agent_id == agent_id and memory_type in (None, m.memory_type)]

    def by_step(self, ids: list[str], reverse: bool = False) -> list[str]:
        return sorted(ids, key=lambda mid: (self.memories[mid].step, mid), reverse=reverse)

    def time_range(self, agent_id: str, lo: int, hi: int, memory_type: str | None, limit: int | None) -> list[str]:
        ids = [mid for mid in self.of(agent_id, memory_type) if lo <= self.memories[mid].step <= hi]
        return self.by_step(ids)[:limit]

    def recent(self, agent_id: str, count: int, memory_type: str | None) -> list[str]:
        return self.by_step(self.of(agent_id, memory_type), reverse=True)[:count]

    def most_important(self, agent_id: str, k: int, memory_type: str | None) -> list[str]:
        ids = self.of(agent_id, memory_type)
        return sorted(ids, key=lambda mid: (self.memories[mid].importance, mid), reverse=True)[:k]

    def attributes(self, agent_id: str, wanted: Mapping[str, Any], memory_type: str | None,
                   limit: int | None) -> list[str]:
        ids = [mid for mid in self.of(agent_id, memory_type)
               if all(holds(at_path(self.memories[mid].contents, path), value) for path, value in wanted.items())]
        return self.by_step(ids)[:limit]

    def get(self, agent_id: str, memory_id: str) -> Memo | None:
        memo = self.memories.get(memory_id)
        return memo if memo is not None and memo.agent_id == agent_id else None

    def clear(self, agent_id: str) -> int:
        doomed = self.of(agent_id)
        for memory_id in doomed:
            del self.memories[memory_id]
        return len(doomed)


def at_path(contents: Any, path: str) -> Any:
    node = contents
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def holds(stored: Any, wanted: Any) -> bool:
    """Equality, or every operator of an operator dict (documented in indices/conditions.py)."""
    if isinstance(wanted, dict) and wanted and all(key.startswith("$") for key in wanted):
        return all(operator_holds(stored, op, value) for op, value in wanted.items())
    return equal(stored, wanted)


def operator_holds(stored: Any, op: str, value: Any) -> bool:
    if op == "$eq":
        return equal(stored, value)
    if op == "$ne":
        return not equal(stored, value)  # a missing path is not equal
    if op == "$in":
        return any(equal(stored, one) for one in value)
    if isinstance(stored, bool) or not isinstance(stored, (int, float)):
        return False
    return {"$gt": stored > value, "$gte": stored >= value, "$lt": stored < value, "$lte": stored <= value}[op]


def equal(stored: Any, wanted: Any) -> bool:
    """Exact match; a bool is never equal to a number (documented in indices/conditions.py)."""
    if stored is MISSING:
        return False
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    if isinstance(wanted, list):
        return isinstance(stored, list) and len(stored) == len(wanted) and all(map(equal, stored, wanted))
    return stored == wanted


def view(memory: dict[str, Any]) -> tuple:
    """The parts of an answered memory the model knows."""
    return (memory["memory_id"], memory["agent_id"], memory["step_number"], memory["metadata"]["memory_type"],
            memory["metadata"]["importance_score"], memory["contents"], memory["timestamp"])


def model_view(model: Model, memory_id: str) -> tuple:
    m = model.memories[memory_id]
    return (memory_id, m.agent_id, m.step, m.memory_type, m.importance, m.contents, m.timestamp)


class Run:
    """One seeded sequence of operations applied to the engine and the model side by side."""

    def __init__(self, engines: list[AgentMemoryAPI], clock: Any, seed: int):
        self.engines, self.clock, self.rng = engines, clock, random.Random(seed)
        self.operator_rng = random.Random(-seed)  # attribute operators (see attributes)
        self.api = engines[0]  # the engine the current operation goes to
        self.last_query: Callable[[], None] | None = None
        self.model = Model()
        self.newest = {agent: 0 for agent in AGENTS}
        self.gone: list[str] = []  # ids of cleared memories: must stay gone
        self.serial = 0
        self.moved = {"stm_to_im": 0, "im_to_ltm": 0, "ltm_to_im": 0}

    # -- inputs -----------------------------------------------------------------------------------
    def step_for(self, agent: str) -> int:
        """Mostly forward in small strides (many memories share a step), sometimes a backfill."""
        if self.rng.random() < 0.1:
            return self.rng.randint(0, self.newest[agent])
        self.newest[agent] += self.rng.choice((0, 0, 1, 1, 2, 5))
        return self.newest[agent]

    def contents(self) -> dict[str, Any]:
        rng = self.rng
        self.serial += 1
        return {
            "serial": self.serial,
            "status": rng.choice(("idle", "moving", "trading")),
            "pos": [rng.randint(0, 3), rng.randint(0, 3)],
            "inventory": {"wood": rng.randint(0, 4), "stone": rng.choice((0, 1, 1.5, True))},
            "flag": rng.choice((True, False, 1, 0)),
            "tags": rng.sample(["a", "b", "c"], rng.randint(0, 2)),
            "deep": {"x": {"y": {"z": rng.randint(0, 2)}}},
            "noise": rng.random(),
            "text": "lorem ipsum " * rng.randint(0, 25),
        }

    def importance(self) -> float:
        return self.rng.choice((0.0, 0.2, 0.5, 0.5, 0.8, 1.0, round(self.rng.random(), 3)))

    def agent(self) -> str:
        return self.rng.choice(AGENTS)

    def maybe_type(self) -> str | None:
        return self.rng.choice(TYPES) if self.rng.random() < 0.35 else None

    def maybe_limit(self) -> int | None:
        return self.rng.randint(0, 12) if self.rng.random() < 0.4 else None

    def some_id(self, agent: str) -> str:
        """Mostly one of the agent's memories; else another agent's, a cleared or an unknown one."""
        roll = self.rng.random()
        own, everyone = self.model.of(agent), sorted(self.model.memories)
        if own and roll < 0.7:
            return self.rng.choice(sorted(own))
        if everyone and roll < 0.8:
            return self.rng.choice(everyone)
        if self.gone and roll < 0.9:
            return self.rng.choice(self.gone)
        return f"{agent}-{self.rng.randint(0, 50)}-0000000000000000deadbeef"

    # -- writes -------------------------------------------------------------------------------------
    def store_one(self) -> None:
        agent, memory_type = self.agent(), self.rng.choice(TYPES)
        store = {"state": self.api.store_agent_state, "action": self.api.store_agent_action,
                 "interaction": self.api.store_agent_interaction}[memory_type]
        contents, step, importance = self.contents(), self.step_for(agent), self.importance()
        memory_id = store(agent, contents, step, importance)
        assert memory_id not in self.model.memories
        self.model.memories[memory_id] = Memo(agent, step, memory_type, importance, contents, self.clock())

    def store_many(self) -> None:
        batch = []
        for _ in range(self.rng.randint(1, 8)):
            agent = self.agent()
            item = {"agent_id": agent, "data": self.contents(), "step_number": self.step_for(agent)}
            if self.rng.random() < 0.7:
                item["memory_type"] = self.rng.choice(TYPES)
            if self.rng.random() < 0.7:
                item["priority"] = self.importance()
            batch.append(item)
        ids = self.api.store_many(batch)
        assert len(ids) == len(batch) == len(set(ids))
        for item, memory_id in zip(batch, ids):
            self.model.memories[memory_id] = Memo(
                item["agent_id"], item["step_number"], item.get("memory_type", "state"),
                item.get("priority", 1.0), item["data"], self.clock(),
            )

    def set_importance(self) -> None:
        agent = self.agent()
        memory_id, score = self.some_id(agent), self.importance()
        if self.model.get(agent, memory_id) is None:
            with pytest.raises(MemoryNotFoundError):
                self.api.set_importance_score(agent, memory_id, score)
            return
        self.api.set_importance_score(agent, memory_id, score)
        self.model.memories[memory_id] = replace(self.model.memories[memory_id], importance=score)

    def clear(self) -> None:
        agent = self.agent()
        self.gone += self.model.of(agent)
        expected = self.model.clear(agent)
        assert self.api.clear_agent_memory(agent) == expected

    def maintain(self) -> None:
        agent = self.agent() if self.rng.random() < 0.3 else None
        report = self.api.force_memory_maintenance(agent)
        assert not report.busy
        for direction in self.moved:
            self.moved[direction] += getattr(report, direction)
        for each in [agent] if agent else AGENTS:
            self.check_tier_counts(each)
        holding = sorted({m.agent_id for m in self.model.memories.values()})
        assert self.api.list_agents() == holding, "maintaining all agents must reach every agent with memories"

    def advance_clock(self) -> None:
        self.clock.advance(self.rng.choice((1.0, STM_TTL / 2, STM_TTL + 1, IM_TTL + 1)))

    # -- queries ------------------------------------------------------------------------------------
    def expect(self, answer: Any, expected_ids: list[str], what: str) -> None:
        assert not answer.degraded, f"{what}: degraded read {answer.failed_tiers}"
        assert [m["memory_id"] for m in answer] == expected_ids, what
        assert [view(m) for m in answer] == [model_view(self.model, mid) for mid in expected_ids], what
        for memory in answer:  # a caller scribbling on an answer must not reach a cached one
            memory["contents"]["serial"] = -1
            memory["contents"]["deep"]["x"].clear()

    def repeat_query(self) -> None:
        """Ask the last question again, often from the result cache."""
        if self.last_query is not None:
            self.last_query()

    def ask(self, question: Callable[[], None]) -> None:
        """Ask now, and keep the question so ``repeat_query`` can ask it again later."""
        question()
        self.last_query = question

    def time_range(self) -> None:
        agent, memory_type, limit = self.agent(), self.maybe_type(), self.maybe_limit()
        if self.rng.random() < 0.2:
            lo, hi = 0, 2**53 - 1
        else:
            lo = self.rng.randint(0, self.newest[agent] + 2)
            hi = lo + self.rng.randint(0, 20)

        def question() -> None:
            answer = self.api.retrieve_by_time_range(agent, lo, hi, memory_type=memory_type, limit=limit)
            self.expect(answer, self.model.time_range(agent, lo, hi, memory_type, limit),
                        f"time range {agent} {lo}..{hi} type={memory_type} limit={limit}")

        self.ask(question)

    def attributes(self) -> None:
        rng = self.rng
        wanted = rng.choice([
            {"status": rng.choice(("idle", "moving", "trading"))},
            {"inventory.wood": rng.randint(0, 4)},
            {"inventory.stone": rng.choice((1, 1.5, True))},
            {"pos.0": rng.randint(0, 3), "pos.1": rng.randint(0, 3)},
            {"flag": rng.choice((True, False, 1, 0))},
            {"deep.x.y.z": rng.randint(0, 2), "status": "idle"},
            {"tags": rng.sample(["a", "b", "c"], rng.randint(0, 2))},
            {"tags.0": rng.choice("abc")},
            {"no.such.path": 1},
        ])
        ops = self.operator_rng  # its own stream: the operations drawn from self.rng stay as they were
        if ops.random() < 0.5:
            wanted = ops.choice([
                {"inventory.wood": {"$gte": ops.randint(0, 4)}},
                {"inventory.stone": {"$lt": ops.choice((1, 1.5, 2))}},
                {"pos.0": {"$gt": ops.randint(0, 2), "$lte": 3}, "status": {"$ne": ops.choice(("idle", "moving"))}},
                {"status": {"$in": ops.sample(["idle", "moving", "trading", "gone"], 2)}},
                {"flag": {"$ne": ops.choice((True, 1))}},
                {"no.such.path": {"$ne": 1}, "inventory.wood": ops.randint(0, 4)},
            ])
        agent, memory_type, limit = self.agent(), self.maybe_type(), self.maybe_limit()

        def question() -> None:
            answer = self.api.retrieve_by_attributes(agent, wanted, memory_type=memory_type, limit=limit)
            self.expect(answer, self.model.attributes(agent, wanted, memory_type, limit),
                        f"attributes {agent} {wanted} type={memory_type} limit={limit}")

        self.ask(question)

    def recent(self) -> None:
        agent, memory_type, count = self.agent(), self.maybe_type(), self.rng.randint(0, 15)

        def question() -> None:
            answer = self.api.get_memory_space(agent).retrieve_recent_states(count, memory_type)
            self.expect(answer, self.model.recent(agent, count, memory_type),
                        f"recent {agent} count={count} type={memory_type}")

        self.ask(question)

    def most_important(self) -> None:
        agent, memory_type = self.agent(), self.maybe_type()
        k = self.rng.choice((1, 3, 10, 1000))

        def question() -> None:
            answer = self.api.retrieve_most_important(agent, k, memory_type)
            self.expect(answer, self.model.most_important(agent, k, memory_type),
                        f"most important {agent} k={k} type={memory_type}")

        self.ask(question)

    def get_memory(self) -> None:
        agent = self.agent()
        memory_id = self.some_id(agent)
        got = self.api.get_memory(agent, memory_id)
        if self.model.get(agent, memory_id) is None:
            assert got is None, f"get_memory({agent}, {memory_id}) found a memory the model does not hold"
        else:
            assert got is not None, f"get_memory({agent}, {memory_id}) lost it"
            assert view(got) == model_view(self.model, memory_id)

    def focus(self) -> None:
        """An agent dwelling on one memory: several focused reads in a row (promotes from LTM)."""
        agent = self.agent()
        memory_id = self.some_id(agent)
        for _ in range(self.rng.randint(2, 4)):
            got = self.api.get_memory(agent, memory_id)
            if self.model.get(agent, memory_id) is None:
                assert got is None, f"get_memory({agent}, {memory_id}) found a memory the model does not hold"
            else:
                assert got is not None and view(got) == model_view(self.model, memory_id)

    def check_tier_counts(self, agent: str) -> None:
        """After maintenance each memory sits in exactly one tier, and STM is within its limit."""
        tiers = self.api.get_memory_statistics(agent)["tiers"]
        assert sum(tier["count"] for tier in tiers.values()) == len(self.model.of(agent)), tiers
        assert tiers["stm"]["count"] <= LIMITS["stm_config"]["memory_limit"], tiers

    # -- the loop -----------------------------------------------------------------------------------
    def operations(self) -> list[tuple[Callable[[], None], int]]:
        return [
            (self.store_one, 22), (self.store_many, 8), (self.set_importance, 6), (self.clear, 1),
            (self.maintain, 6), (self.advance_clock, 3), (self.time_range, 12), (self.attributes, 8),
            (self.recent, 6), (self.most_important, 6), (self.get_memory, 10), (self.focus, 4),
            (self.repeat_query, 6),
        ]

    def play(self, count: int) -> None:
        operations, weights = zip(*self.operations())
        for number in range(count):
            operation = self.rng.choices(operations, weights)[0]
            engine = self.rng.randrange(len(self.engines))
            self.api = self.engines[engine]
            try:
                operation()
            except AssertionError as exc:
                raise AssertionError(f"operation {number} ({operation.__name__} on engine {engine}): {exc}") from exc


@pytest.mark.parametrize("processes", [1, 2], ids=["one-engine", "two-engines"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_engine_agrees_with_a_dict(make_api, clock, seed, processes):
    engines = [make_api(clock=clock, **LIMITS) for _ in range(processes)]
    run = Run(engines, clock, seed)
    run.play(OPERATIONS)
    run.maintain()
    for api in engines:  # a final sweep over everything each agent holds, from both engines
        for agent in AGENTS:
            everything = run.model.time_range(agent, 0, 2**53 - 1, None, None)
            run.expect(api.retrieve_by_time_range(agent, 0, 2**53 - 1), everything, f"final sweep of {agent}")
    # the run must really have moved memories through all three tiers, both ways
    assert all(run.moved.values()), run.moved


@pytest.mark.parametrize("seed", [5])
def test_engine_agrees_with_a_dict_with_postgresql_as_ltm(make_api, clock, postgres_engine, seed):
    """The same model run with the long-term tier on PostgreSQL instead of SQLite."""
    engines = [make_api(clock=clock, ltm_engine=postgres_engine, **LIMITS) for _ in range(2)]
    run = Run(engines, clock, seed)
    run.play(OPERATIONS)
    run.maintain()
    for agent in AGENTS:
        everything = run.model.time_range(agent, 0, 2**53 - 1, None, None)
        run.expect(engines[0].retrieve_by_time_range(agent, 0, 2**53 - 1), everything, f"final sweep of {agent}")
    assert all(run.moved.values()), run.moved
