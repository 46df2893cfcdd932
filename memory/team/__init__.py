"""The coordination layer for teams of LLM agents, on the same Redis as the memory engine.

One module per idea: store (connection, RedisShortTermMemory), access (tiers, credentials), ttl
(TTL strategies and the one check on durations), values (what is stored, and the checks on texts
and numbers), working (working memory), signals, sessions, coordinator (tasks), patterns (staging)
and library (the SQL pattern library), conflicts, collaboration, workspace (AgentWorkspace).
Where their bytes live (the key schema, the Lua scripts, the embedded engine's in-process twins
and durable copy, the library's table) is ``tiers.coordination``'s. Import the names from ``memory``.
"""

from memory.team.access import AccessTier, AgentCredentials
from memory.team.collaboration import CollaborationState
from memory.team.conflicts import ConflictContext
from memory.team.coordinator import AgentCoordinator, AgentTask
from memory.team.errors import AccessDeniedError, DuplicateTaskError, NotFoundError, TaskOwnershipError
from memory.team.library import LibraryPattern, PatternLibrary
from memory.team.patterns import StagedPattern
from memory.team.sessions import TeamSession
from memory.team.store import (
    RedisShortTermMemory,
    check_redis_connection,
    connect_redis_server,
    get_railway_redis,
    get_redis_memory,
)
from memory.team.ttl import TTLStrategy
from memory.team.workspace import AgentWorkspace

__all__ = [
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
    "connect_redis_server",
    "get_railway_redis",
    "get_redis_memory",
]
