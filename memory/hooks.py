"""Memory hooks: record what an agent saw, did and became around every ``act`` call.

``@install_memory_hooks`` on a :class:`BaseAgent` subclass, or ``with_memory(agent, agent_id=...)``
on any object with an ``act`` method. The agent's ``act`` runs exactly once per call and its own
exceptions propagate unchanged; a memory failure is logged and never reaches the agent.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard, cast

from memory._engine.agent_memory import AgentMemoryAPI
from memory.models import ActionData, AgentState

log = logging.getLogger(__name__)

_default_api: Any = None
_default_lock = threading.Lock()


def default_memory_api() -> Any:
    """The process-wide engine used by hooked agents that were given none."""
    global _default_api
    with _default_lock:
        if _default_api is None:
            _default_api = AgentMemoryAPI()
        return _default_api


class BaseAgent:
    """A minimal agent: an id, a step counter, ``act`` and ``get_state``.

    ``config`` may carry ``memory_api`` (an AgentMemoryAPI) for the hooks to write to.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, agent_id: str | None = None):
        self.config = dict(config or {})
        self.agent_id = agent_id or f"agent-{id(self):x}"
        self.step_number = 0
        self.memory_api = self.config.get("memory_api")

    def act(self, observation: Any) -> Any:
        raise NotImplementedError

    def get_state(self) -> AgentState:
        return AgentState(agent_id=self.agent_id, step_number=self.step_number)


def _state_dict(agent: Any) -> dict[str, Any]:
    getter = getattr(agent, "get_state", None)
    if callable(getter):
        state = getter()
        if hasattr(state, "as_dict"):
            return state.as_dict()
        if isinstance(state, Mapping):
            return dict(state)
        return {"state": state}
    return {
        name: value
        for name, value in vars(agent).items()
        if not name.startswith("_") and isinstance(value, (str, int, float, bool, type(None), list, dict))
        and name not in ("memory_api", "config")
    }


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changed = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old != new and key != "step_number":
            changed[key] = {"before": old, "after": new}
    return changed


def _action_type(result: Any) -> str:
    named = getattr(result, "action_type", None)
    if named is None and isinstance(result, Mapping):
        named = result.get("action_type")
    return str(named) if named is not None else type(result).__name__


_recording = threading.local()  # ids of agents inside a hooked act() on this thread
_RECORDER = "_tiermem_recorder"  # the agent attribute that keeps its recorder between calls


def _is_step(value: Any) -> TypeGuard[int]:
    return type(value) is int and value >= 0


class _Recorder:
    """One agent's recording: where its memories go, a step counter for agents that keep none,
    and the state stored last, so that the state before an act is not stored a second time when
    it is the state after the previous one."""

    def __init__(self) -> None:
        self.agent_id: str | None = None  # with_memory's, over the agent's own
        self.memory_api: Any = None
        self.own_step = 0
        self.last_after: tuple[str, int, dict[str, Any]] | None = None

    def run(self, agent: Any, act: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """Call ``act`` once, storing the state before, the action, and the state after.

        A hooked ``act`` that calls another hooked ``act`` of the same agent (``super().act()``)
        records once.
        """
        active = getattr(_recording, "agents", None)
        if active is None:
            active = _recording.agents = set()
        if id(agent) in active:
            return act(*args, **kwargs)
        current = getattr(agent, "step_number", None)
        counted = _is_step(current)
        step = cast(int, current) if counted else self.own_step
        api = None
        try:
            api = self.memory_api or getattr(agent, "memory_api", None) or default_memory_api()
            who = self.agent_id or getattr(agent, "agent_id", None) or f"agent-{id(agent):x}"
            before = _state_dict(agent)
            if self.last_after != (who, step, before):
                api.store_agent_state(who, before, step)
        except Exception:  # noqa: BLE001 - a memory failure must never disturb the agent
            log.exception("memory hook could not record the state before act()")
            api = None
        active.add(id(agent))
        started = time.perf_counter()
        try:
            result = act(*args, **kwargs)  # the agent's own exceptions propagate untouched
        finally:
            active.discard(id(agent))
            after_step = self._advance(agent, step, counted)
        elapsed = time.perf_counter() - started
        if api is None:
            return result
        try:
            after = _state_dict(agent)
            observation = args[0] if args else kwargs.get("observation")
            action = ActionData(
                action_type=_action_type(result),
                step_number=step,
                params={"observation": observation},
                result=result.as_dict() if hasattr(result, "as_dict") else result,
                reward=getattr(result, "reward", None),
                state_changes=_changes(before, after),
                execution_time=elapsed,
            ).as_dict()
            changed = len(action.get("state_changes") or {})
            api.store_many(
                [
                    {"agent_id": who, "data": action, "step_number": step, "memory_type": "action",
                     "priority": min(1.0, 0.5 + 0.1 * changed)},
                    {"agent_id": who, "data": after, "step_number": after_step},
                ]
            )
            self.last_after = (who, after_step, after)
        except Exception:  # noqa: BLE001 - see above
            log.exception("memory hook could not record the action and the state after act()")
        return result

    def _advance(self, agent: Any, step: int, counted: bool) -> int:
        """The step after an act. An agent whose ``act`` moved its own ``step_number`` keeps it;
        otherwise the counter (the agent's, or ours for an agent without one) goes up by one."""
        if not counted:
            self.own_step += 1
            return self.own_step
        now = getattr(agent, "step_number", None)
        if now != step:
            return now if _is_step(now) else step + 1
        try:
            agent.step_number = step + 1
        except Exception:  # noqa: BLE001 - a read-only counter is the agent's business
            log.exception("memory hook could not advance step_number")
        return step + 1


def _recorder_of(agent: Any) -> _Recorder:
    """The agent's recorder, kept on the agent (an agent without a ``__dict__`` gets a new one
    each call: it should count its own steps)."""
    try:
        attributes = vars(agent)
    except TypeError:
        return _Recorder()
    recorder = attributes.get(_RECORDER)
    if recorder is None:
        recorder = attributes[_RECORDER] = _Recorder()
    return recorder


def install_memory_hooks(cls: type) -> type:
    """Class decorator: every instance's ``act`` records its memories."""
    original = getattr(cls, "act")  # noqa: B009 - any class with an act method
    if getattr(original, "__tiermem_hooked__", False):
        return cls

    @functools.wraps(original)
    def act(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _recorder_of(self).run(self, functools.partial(original, self), args, kwargs)

    act.__tiermem_hooked__ = True  # type: ignore[attr-defined]
    setattr(cls, "act", act)  # noqa: B010
    return cls


def with_memory(agent: Any, agent_id: str | None = None, memory_api: Any = None) -> Any:
    """Hook one existing agent object in place and return it. On an agent hooked already (its
    class or an earlier call), ``agent_id`` and ``memory_api`` replace the ones it records with."""
    act = getattr(agent, "act", None)
    if not callable(act):
        raise TypeError(f"{type(agent).__name__} has no act() method to hook")
    recorder = _recorder_of(agent)
    if agent_id is not None:
        recorder.agent_id = agent_id
        try:
            agent.agent_id = agent_id
        except AttributeError:
            pass
    if memory_api is not None:
        recorder.memory_api = memory_api
    if getattr(act, "__tiermem_hooked__", False):
        return agent

    @functools.wraps(act)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        return recorder.run(agent, act, args, kwargs)

    hooked.__tiermem_hooked__ = True  # type: ignore[attr-defined]
    agent.act = hooked
    return agent
