"""Memory hooks in depth: the agent runs exactly as it would without them, and its memories are
recorded with the right steps, types and state changes. Runs on both Redis engines."""

from __future__ import annotations

import logging

import pytest

from memory.api import (
    ActionResult,
    AgentState,
    BaseAgent,
    MemoryStoreException,
    install_memory_hooks,
    with_memory,
)
from support import cut_off_redis


class AgentError(Exception):
    """An error of the agent's own making."""


class Forager(BaseAgent):
    """Spends 3 energy per act; raises the error it was given, if any."""

    def __init__(self, config=None, agent_id=None, fail_with=None):
        super().__init__(config, agent_id)
        self.energy = 10
        self.calls = 0
        self.fail_with = fail_with

    def act(self, observation):
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        self.energy -= 3
        return {"action_type": "forage", "found": observation}

    def get_state(self):
        return AgentState(agent_id=self.agent_id, step_number=self.step_number, extra_data={"energy": self.energy})


@install_memory_hooks
class HookedForager(Forager):
    """A Forager with the memory hooks installed on its class."""


class PlainAgent:
    """No get_state, no step counter: the hooks must make do with its public attributes."""

    def __init__(self):
        self.mood = "calm"
        self.energy = 10
        self.calls = 0
        self._secret = "not stored"

    def act(self, observation):
        self.calls += 1
        self.mood = "busy"
        return {"action_type": "reply", "to": observation}


def timeline(api, agent_id):
    return [(m["step_number"], m["metadata"]["memory_type"]) for m in api.retrieve_by_time_range(agent_id, 0, 100)]


def of_type(api, agent_id, memory_type):
    return list(api.retrieve_by_time_range(agent_id, 0, 100, memory_type=memory_type))


def hook_errors(caplog):
    return [r for r in caplog.records if r.name == "memory.hooks" and r.levelno >= logging.ERROR]


# -- the agent runs as it would without hooks ------------------------------------------------------
def test_act_runs_exactly_once_per_call(api):
    agent = HookedForager({"memory_api": api}, agent_id="forager")

    results = [agent.act(f"berry-{i}") for i in range(3)]

    assert agent.calls == 3
    assert results == [{"action_type": "forage", "found": f"berry-{i}"} for i in range(3)]


def test_the_agents_own_exception_propagates_unchanged(api):
    error = AgentError("the river is too deep")
    agent = HookedForager({"memory_api": api}, agent_id="forager", fail_with=error)

    with pytest.raises(AgentError) as raised:
        agent.act("river")

    assert raised.value is error and type(raised.value) is AgentError
    assert agent.calls == 1
    (before,) = of_type(api, "forager", "state")
    assert before["step_number"] == 0 and before["contents"]["energy"] == 10
    assert of_type(api, "forager", "action") == []


def _closed(api, monkeypatch, redis_client):
    api.close()


def _store_methods_raise(api, monkeypatch, redis_client):
    def refuse(*args, **kwargs):
        raise MemoryStoreException("injected: the store refused")

    for name in ("store_agent_state", "store_agent_action", "store_many"):
        monkeypatch.setattr(api, name, refuse)


def _redis_gone(api, monkeypatch, redis_client):
    cut_off_redis(monkeypatch, redis_client)


def _agent_id_unreadable(api, monkeypatch, redis_client):
    def unreadable(agent):
        raise RuntimeError("injected: the agent's id cannot be read")

    monkeypatch.setattr(HookedForager, "agent_id", property(unreadable), raising=False)


MEMORY_FAILURES = [_closed, _store_methods_raise, _redis_gone, _agent_id_unreadable]


@pytest.mark.parametrize("break_memory", MEMORY_FAILURES, ids=lambda f: f.__name__.strip("_"))
def test_a_memory_failure_is_logged_and_never_disturbs_the_agent(api, redis_client, monkeypatch, caplog, break_memory):
    agent = HookedForager({"memory_api": api}, agent_id="forager")
    break_memory(api, monkeypatch, redis_client)

    with caplog.at_level(logging.ERROR, logger="memory.hooks"):
        result = agent.act("berry")

    assert result == {"action_type": "forage", "found": "berry"}
    assert agent.calls == 1 and agent.energy == 7 and agent.step_number == 1
    assert hook_errors(caplog)


@pytest.mark.parametrize("break_memory", MEMORY_FAILURES, ids=lambda f: f.__name__.strip("_"))
def test_a_memory_failure_does_not_mask_the_agents_exception(api, redis_client, monkeypatch, caplog, break_memory):
    error = AgentError("lost")
    agent = HookedForager({"memory_api": api}, agent_id="forager", fail_with=error)
    break_memory(api, monkeypatch, redis_client)

    with caplog.at_level(logging.ERROR, logger="memory.hooks"), pytest.raises(AgentError) as raised:
        agent.act("fog")

    assert raised.value is error
    assert agent.calls == 1
    assert hook_errors(caplog)


def test_a_failure_after_act_keeps_the_state_before(api, monkeypatch, caplog):
    agent = HookedForager({"memory_api": api}, agent_id="forager")

    def refuse(records):
        raise MemoryStoreException("injected: the store refused")

    monkeypatch.setattr(api, "store_many", refuse)
    with caplog.at_level(logging.ERROR, logger="memory.hooks"):
        result = agent.act("berry")

    assert result == {"action_type": "forage", "found": "berry"}
    assert timeline(api, "forager") == [(0, "state")]
    assert hook_errors(caplog)


# -- what is recorded -----------------------------------------------------------------------------
def test_states_before_and_after_and_the_action_are_recorded(api):
    agent = HookedForager({"memory_api": api}, agent_id="forager")

    agent.act("berry")

    assert timeline(api, "forager") == [(0, "state"), (0, "action"), (1, "state")]
    before, after = (m["contents"] for m in of_type(api, "forager", "state"))
    assert before == {"agent_id": "forager", "step_number": 0, "energy": 10}
    assert after == {"agent_id": "forager", "step_number": 1, "energy": 7}
    (action,) = (m["contents"] for m in of_type(api, "forager", "action"))
    assert action["action_type"] == "forage"
    assert action["step_number"] == 0
    assert action["params"] == {"observation": "berry"}
    assert action["result"] == {"action_type": "forage", "found": "berry"}
    assert action["state_changes"] == {"energy": {"before": 10, "after": 7}}


def test_step_number_advances_with_every_act(api):
    agent = HookedForager({"memory_api": api}, agent_id="forager")

    for observation in ("a", "b", "c"):
        agent.act(observation)

    assert agent.step_number == 3
    assert [m["step_number"] for m in of_type(api, "forager", "action")] == [0, 1, 2]
    assert [m["contents"]["params"]["observation"] for m in of_type(api, "forager", "action")] == ["a", "b", "c"]
    # the state before an act is the state after the previous one: stored once
    assert [(m["step_number"], m["contents"]["energy"]) for m in of_type(api, "forager", "state")] == [
        (0, 10), (1, 7), (2, 4), (3, 1)
    ]


def test_a_state_changed_between_acts_is_stored_before_the_next(api):
    agent = HookedForager({"memory_api": api}, agent_id="forager")

    agent.act("a")
    agent.energy = 20  # the world changed the agent between two acts
    agent.act("b")

    assert [(m["step_number"], m["contents"]["energy"]) for m in of_type(api, "forager", "state")] == [
        (0, 10), (1, 7), (1, 20), (2, 17)
    ]


def test_an_agent_that_counts_its_own_steps_keeps_its_count(api):
    @install_memory_hooks
    class Ticker(BaseAgent):
        def act(self, observation):
            self.step_number += 5  # five ticks of its own world per act
            return {"action_type": "tick"}

    agent = Ticker({"memory_api": api}, agent_id="ticker")

    for _ in range(3):
        agent.act({})

    assert agent.step_number == 15
    assert [m["step_number"] for m in of_type(api, "ticker", "action")] == [0, 5, 10]
    states = of_type(api, "ticker", "state")
    assert [(m["step_number"], m["contents"]["step_number"]) for m in states] == [(0, 0), (5, 5), (10, 10), (15, 15)]


def test_an_action_result_is_recorded_under_its_own_action_type(api):
    @install_memory_hooks
    class Trader(BaseAgent):
        def act(self, observation):
            return ActionResult(action_type="trade", params={"item": observation}, reward=0.5)

    agent = Trader({"memory_api": api}, agent_id="trader")

    result = agent.act("wood")

    assert result == ActionResult(action_type="trade", params={"item": "wood"}, reward=0.5)
    (action,) = api.retrieve_by_attributes("trader", {"action_type": "trade"}, memory_type="action")
    assert action["contents"]["reward"] == 0.5
    assert action["contents"]["result"] == {"action_type": "trade", "params": {"item": "wood"}, "reward": 0.5}


def test_with_memory_falls_back_to_public_attributes(api):
    agent = with_memory(PlainAgent(), agent_id="plain", memory_api=api)

    result = agent.act("hello")

    assert result == {"action_type": "reply", "to": "hello"}
    before, after = (m["contents"] for m in of_type(api, "plain", "state"))
    assert before == {"agent_id": "plain", "mood": "calm", "energy": 10, "calls": 0}
    assert after == {"agent_id": "plain", "mood": "busy", "energy": 10, "calls": 1}
    (action,) = (m["contents"] for m in of_type(api, "plain", "action"))
    assert action["state_changes"] == {"mood": {"before": "calm", "after": "busy"}, "calls": {"before": 0, "after": 1}}


def test_an_agent_without_a_step_counter_still_gets_advancing_steps(api):
    agent = with_memory(PlainAgent(), agent_id="plain", memory_api=api)

    agent.act("first")
    agent.act("second")

    actions = of_type(api, "plain", "action")
    assert [m["contents"]["params"]["observation"] for m in actions] == ["first", "second"]
    assert [m["step_number"] for m in actions] == [0, 1]


def test_with_memory_on_a_hooked_class_records_where_it_is_told(make_api, prefix, tmp_path):
    first, second = make_api(), make_api(data_dir=str(tmp_path / "second"), key_prefix=f"{prefix}-second")
    agent = HookedForager({"memory_api": first}, agent_id="forager")
    agent.act("a")

    assert with_memory(agent, agent_id="forager-2", memory_api=second) is agent
    agent.act("b")

    assert agent.agent_id == "forager-2" and agent.calls == 2
    assert timeline(first, "forager") == [(0, "state"), (0, "action"), (1, "state")]
    assert timeline(second, "forager-2") == [(1, "state"), (1, "action"), (2, "state")]
    assert timeline(first, "forager-2") == []


def test_with_memory_needs_an_act_method(api):
    with pytest.raises(TypeError, match="act"):
        with_memory(object(), agent_id="nothing", memory_api=api)


# -- hooks installed more than once ----------------------------------------------------------------
def _decorated_twice(api):
    class Twice(Forager):
        pass

    hooked = install_memory_hooks(install_memory_hooks(Twice))
    return hooked({"memory_api": api}, agent_id="forager")


def _with_memory_twice(api):
    agent = Forager({"memory_api": api}, agent_id="forager")
    return with_memory(with_memory(agent, agent_id="forager", memory_api=api), agent_id="forager", memory_api=api)


def _with_memory_on_a_hooked_class(api):
    return with_memory(HookedForager({"memory_api": api}, agent_id="forager"), agent_id="forager", memory_api=api)


def _hooked_subclass_of_a_hooked_class(api):
    @install_memory_hooks
    class CarefulForager(HookedForager):
        def act(self, observation):
            return super().act(observation)

    return CarefulForager({"memory_api": api}, agent_id="forager")


@pytest.mark.parametrize(
    "build",
    [_decorated_twice, _with_memory_twice, _with_memory_on_a_hooked_class, _hooked_subclass_of_a_hooked_class],
    ids=lambda f: f.__name__.strip("_"),
)
def test_hooks_installed_twice_record_once(api, build):
    agent = build(api)

    agent.act("berry")

    assert agent.calls == 1
    assert agent.step_number == 1
    assert timeline(api, "forager") == [(0, "state"), (0, "action"), (1, "state")]
