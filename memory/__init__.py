"""tiermem: a tiered memory engine for agents.

The engine's entry points live in :mod:`memory.api`. The coordination layer's names are
importable from here (``from memory import AgentWorkspace``), loaded on first use (PEP 562), so
that the tiers can import :mod:`memory.record` and :mod:`memory.errors` without pulling anything in.
"""

from typing import Any

_TEAM_NAMES = (
    "AccessDeniedError",
    "AccessTier",
    "AgentCoordinator",
    "AgentCredentials",
    "AgentTask",
    "AgentWorkspace",
    "CollaborationState",
    "ConflictContext",
    "DuplicateTaskError",
    "LibraryPattern",
    "NotFoundError",
    "PatternLibrary",
    "RedisShortTermMemory",
    "StagedPattern",
    "TTLStrategy",
    "TaskOwnershipError",
    "TeamSession",
    "check_redis_connection",
    "get_railway_redis",
    "get_redis_memory",
)

__all__ = list(_TEAM_NAMES)


def __getattr__(name: str) -> Any:
    if name in _TEAM_NAMES:
        from memory import team

        value = getattr(team, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_TEAM_NAMES))
