"""create_memory_agent: a WorkingMemoryAgent whose memory manager a config dict chooses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memory import validation
from memory._engine.agent_memory import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.conversation.agent import WorkingMemoryAgent
from memory.conversation.database_manager import DatabaseMemoryManager
from memory.conversation.in_memory import InMemoryManager
from memory.conversation.manager import MemoryManager
from memory.conversation.redis_manager import DEFAULT_TTL, RedisMemoryManager
from memory.conversation.tiered_manager import TieredMemoryManager
from tiers.errors import MemoryConfigException

MEMORY_TYPES = ("memory", "redis", "database", "tiered")
_KNOWN = {
    "memory_type", "llm_client", "policy",
    "redis_url", "redis_client", "key_prefix", "ttl",  # redis (and the tiered manager's head)
    "db_connection", "namespace",  # database
    "memory_api", "memory_config",  # tiered
}


def create_memory_agent(config: Mapping[str, Any]) -> WorkingMemoryAgent:
    """Build the agent and its manager from ``config``; ``await agent.close()`` releases both.

    ``memory_type``: ``"memory"`` (default), ``"redis"`` (``redis_url`` or an async
    ``redis_client``; ``key_prefix``, ``ttl`` in seconds), ``"database"`` (``db_connection``:
    an SQLAlchemy engine or URL; ``namespace``) or ``"tiered"`` (``memory_api``, or a
    ``memory_config`` for an engine the agent owns; with ``redis_url`` or ``redis_client`` the
    current memories are kept in Redis, so processes can share conversations). ``llm_client``
    (optional) is any object with ``async chat(messages)``; ``policy`` a ``WorkingMemoryPolicy``.

    An unknown or unusable option raises MemoryConfigException; a bad value for one of the
    agent's or a manager's own arguments raises that part's InvalidConversationError; the agent's
    are checked before any manager is opened.
    """
    if not isinstance(config, Mapping):
        raise MemoryConfigException(f"config must be a dict, got {type(config).__name__}")
    unknown = set(config) - _KNOWN
    if "model" in unknown or "temperature" in unknown:
        raise MemoryConfigException(
            "tiermem ships no LLM client: build yours from model/temperature and pass it as llm_client"
        )
    if unknown:
        raise MemoryConfigException(
            f"unknown create_memory_agent option(s) {validation.key_names(unknown)}; known: {sorted(_KNOWN)}"
        )
    memory_type = config.get("memory_type", "memory")
    if not isinstance(memory_type, str) or memory_type not in MEMORY_TYPES:
        raise MemoryConfigException(
            f"memory_type must be one of {', '.join(MEMORY_TYPES)}; got {validation.shown(memory_type)}"
        )
    agent = WorkingMemoryAgent(config.get("llm_client"), policy=config.get("policy"))  # checked before a manager opens
    agent.memory_manager = _manager(memory_type, config)
    return agent


def _manager(memory_type: str, config: Mapping[str, Any]) -> MemoryManager:
    if memory_type == "memory":
        return InMemoryManager(ttl=config.get("ttl"))
    if memory_type == "redis":
        return _redis(config, required=True)  # type: ignore[return-value]
    if memory_type == "database":
        if "db_connection" not in config:
            raise MemoryConfigException('memory_type "database" needs db_connection (an SQLAlchemy engine or URL)')
        return DatabaseMemoryManager(config["db_connection"], namespace=config.get("namespace", "tiermem"))
    api = config.get("memory_api")
    if api is not None:
        if "memory_config" in config:
            raise MemoryConfigException("give memory_api or memory_config, not both")
        return TieredMemoryManager(api, head=_redis(config, required=False))
    memory_config = config.get("memory_config")
    if memory_config is not None and not isinstance(memory_config, MemoryConfig):
        raise MemoryConfigException(f"memory_config must be a MemoryConfig, got {validation.shown(memory_config)}")
    head = _redis(config, required=False)  # checked before an engine is opened
    return TieredMemoryManager(AgentMemoryAPI(memory_config or MemoryConfig()), head=head, close_api=True)


def _redis(config: Mapping[str, Any], required: bool) -> RedisMemoryManager | None:
    url, client = config.get("redis_url"), config.get("redis_client")
    if url is None and client is None:
        if required:
            raise MemoryConfigException('memory_type "redis" needs redis_url (or an async redis_client)')
        return None
    return RedisMemoryManager(
        url, client=client, key_prefix=config.get("key_prefix", "tiermem"), ttl=config.get("ttl", DEFAULT_TTL)
    )
