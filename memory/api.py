"""The public face of tiermem. Import everything from here; the other modules are private.

    from memory.api import AgentMemoryAPI
    with AgentMemoryAPI() as memory:
        memory.store_agent_state("agent-1", {"health": 0.9}, step_number=1)
"""

from memory.cache import cacheable
from memory.engine import AgentMemoryAPI, QueryResult
from memory.errors import (
    InvalidInputError,
    MemoryAPIException,
    MemoryConfigException,
    MemoryMaintenanceException,
    MemoryNotFoundError,
    MemoryRetrievalException,
    MemoryStoreException,
)
from memory.hooks import BaseAgent, install_memory_hooks, with_memory
from memory.maintenance import MaintenanceReport
from memory.models import ActionData, ActionResult, AgentState
from memory.space import MemorySpace

__all__ = [
    "AgentMemoryAPI",
    "MemorySpace",
    "QueryResult",
    "MaintenanceReport",
    "AgentState",
    "ActionResult",
    "ActionData",
    "BaseAgent",
    "install_memory_hooks",
    "with_memory",
    "cacheable",
    "MemoryAPIException",
    "MemoryStoreException",
    "MemoryRetrievalException",
    "MemoryMaintenanceException",
    "MemoryConfigException",
    "MemoryNotFoundError",
    "InvalidInputError",
]
