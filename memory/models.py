"""Structured models for agent states and actions (``AgentState``, ``ActionResult``,
``ActionData``). Each has ``as_dict()`` giving the plain dict that is stored."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _plain(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None or f.name == "extra_data":
            continue
        out[f.name] = value.as_dict() if hasattr(value, "as_dict") else value
    return out


@dataclass
class AgentState:
    """An agent's state at one step. ``extra_data`` keys are stored at the top level, so
    ``{"inventory": {"wood": 5}}`` is queryable as ``"inventory.wood"``."""

    agent_id: str
    step_number: int
    health: float | None = None
    reward: float | None = None
    position_x: float | None = None
    position_y: float | None = None
    position_z: float | None = None
    resource_level: float | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = _plain(self)
        clash = sorted(set(out) & set(self.extra_data))
        if clash:
            raise ValueError(f"extra_data repeats the state fields {clash}")
        out.update(self.extra_data)
        return out


@dataclass
class ActionResult:
    """What an action did: its type, parameters and reward."""

    action_type: str
    params: dict[str, Any] = field(default_factory=dict)
    reward: float = 0.0
    success: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class ActionData:
    """One recorded action with the states around it and what changed."""

    action_type: str
    step_number: int
    params: dict[str, Any] = field(default_factory=dict)
    reward: float | None = None
    result: Any = None
    state_before: dict[str, Any] | None = None
    state_after: dict[str, Any] | None = None
    state_changes: dict[str, Any] | None = None
    execution_time: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)
