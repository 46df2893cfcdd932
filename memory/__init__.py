"""tiermem: a tiered memory engine for agents, and a coordination layer for agent teams.

Every public name is importable from here::

    from memory import AgentMemoryAPI, MemoryConfig, AgentCoordinator, WorkingMemoryAgent

``memory.api`` (the engine's names) and ``memory.config`` are the same objects under the import
paths the Agent Memory API document uses. ``memory.langgraph_store`` holds ``TierMemStore``, a
LangGraph store on the engine (the ``langgraph`` extra, so it is not imported here). Everything
else under ``memory`` is private.
"""

from memory._engine.agent_memory import AgentMemoryAPI, QueryResult
from memory._engine.maintenance import MaintenanceReport
from memory._engine.transfer import ImportReport
from memory.async_api import AsyncAgentMemoryAPI, AsyncQueryBuilder
from memory.cache import cacheable
from memory.config import LTMConfig, MemoryConfig, RedisIMConfig, RedisSTMConfig, SearchConfig
from memory.conversation import (
    AgentInput,
    ArchivedTurn,
    ConversationConflictError,
    ConversationMemory,
    DatabaseMemoryManager,
    IAgentInput,
    InMemoryManager,
    InvalidConversationError,
    LLMClient,
    LLMClientError,
    MemoryManager,
    RedisMemoryManager,
    TieredMemoryManager,
    Turn,
    TurnOutcome,
    WorkingMemoryAgent,
    WorkingMemoryPolicy,
    create_memory_agent,
)
from memory.hooks import BaseAgent, install_memory_hooks, with_memory
from memory.models import ActionData, ActionResult, AgentState
from memory.query import QueryBuilder
from memory.routing import agents_for_process, process_for_agent
from memory.space import MemorySpace
from memory.team import (
    AccessDeniedError,
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    AgentWorkspace,
    CollaborationState,
    ConflictContext,
    DuplicateTaskError,
    LibraryPattern,
    NotFoundError,
    PatternLibrary,
    RedisShortTermMemory,
    StagedPattern,
    TaskOwnershipError,
    TeamSession,
    TTLStrategy,
    check_redis_connection,
    connect_redis_server,
    get_railway_redis,
    get_redis_memory,
)
from memory.team.async_team import (
    AsyncAgentCoordinator,
    AsyncAgentWorkspace,
    AsyncRedisShortTermMemory,
    AsyncTeamSession,
)
from tiers.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryMaintenanceException,
    MemoryNotFoundError,
    MemoryRetrievalException,
    MemoryStoreException,
    MissingExtraError,
    OutcomeUnknownError,
    PayloadUnreadableError,
    StoreIncompleteError,
    TierUnavailableError,
)

__all__ = [
    # the engine (memory.api holds these under the Agent Memory API's import path)
    "AgentMemoryAPI",
    "AsyncAgentMemoryAPI",
    "AsyncQueryBuilder",
    "MemorySpace",
    "QueryBuilder",
    "QueryResult",
    "ImportReport",
    "MaintenanceReport",
    "AgentState",
    "ActionResult",
    "ActionData",
    "BaseAgent",
    "install_memory_hooks",
    "with_memory",
    "cacheable",
    "process_for_agent",
    "agents_for_process",
    "MemoryConfig",
    "RedisSTMConfig",
    "RedisIMConfig",
    "LTMConfig",
    "SearchConfig",
    "MemoryAPIException",
    "MemoryStoreException",
    "InvalidInputError",
    "OutcomeUnknownError",
    "StoreIncompleteError",
    "MemoryRetrievalException",
    "MemoryNotFoundError",
    "PayloadUnreadableError",
    "MemoryMaintenanceException",
    "MemoryConfigException",
    "MissingExtraError",
    "TierUnavailableError",
]

__all__ += [  # agent teams
    "AgentWorkspace",
    "RedisShortTermMemory",
    "AccessTier",
    "AgentCredentials",
    "TTLStrategy",
    "AgentCoordinator",
    "AsyncAgentCoordinator",
    "AsyncAgentWorkspace",
    "AsyncRedisShortTermMemory",
    "AsyncTeamSession",
    "AgentTask",
    "TeamSession",
    "StagedPattern",
    "PatternLibrary",
    "LibraryPattern",
    "CollaborationState",
    "ConflictContext",
    "get_redis_memory",
    "connect_redis_server",
    "get_railway_redis",
    "check_redis_connection",
    "AccessDeniedError",
    "DuplicateTaskError",
    "TaskOwnershipError",
    "NotFoundError",
]

__all__ += [  # conversations
    "WorkingMemoryAgent",
    "AgentInput",
    "IAgentInput",
    "TurnOutcome",
    "create_memory_agent",
    "MemoryManager",
    "InMemoryManager",
    "RedisMemoryManager",
    "DatabaseMemoryManager",
    "TieredMemoryManager",
    "ConversationMemory",
    "Turn",
    "ArchivedTurn",
    "WorkingMemoryPolicy",
    "LLMClient",
    "InvalidConversationError",
    "ConversationConflictError",
    "LLMClientError",
]

