"""create_memory_agent: a WorkingMemoryAgent whose memory manager a config dict chooses."""

from __future__ import annotations

from typing import Any, Mapping

from memory.config import MemoryConfig
from memory.conversation.agent import WorkingMemoryAgent
from memory.conversation.database_manager import DatabaseMemoryManager
from memory.conversation.in_memory import InMemoryManager
from memory.conversation.manager import MemoryManager
from memory.conversation.redis_manager import DEFAULT_TTL, RedisMemoryManager
from memory.conversation.tiered_manager import TieredMemoryManager
from memory.engine import AgentMemoryAPI
from memory.errors import MemoryConfigException

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
    """
    if not isinstance(config, Mapping):
        raise MemoryConfigException(f"config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - _KNOWN)
    if "model" in unknown or "temperature" in unknown:
        raise MemoryConfigException(
            "tiermem ships no LLM client: build yours from model/temperature and pass it as llm_client"
        )
    if unknown:
        raise MemoryConfigException(f"unknown create_memory_agent option(s) {unknown}; known: {sorted(_KNOWN)}")
    memory_type = config.get("memory_type", "memory")
    if memory_type not in MEMORY_TYPES:
        raise MemoryConfigException(f"memory_type must be one of {', '.join(MEMORY_TYPES)}; got {memory_type!r}")
    manager = _manager(memory_type, config)
    return WorkingMemoryAgent(config.get("llm_client"), manager, policy=config.get("policy"))


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
    owned = api is None
    if owned:
        api = AgentMemoryAPI(config.get("memory_config") or MemoryConfig())
    return TieredMemoryManager(api, head=_redis(config, required=False), close_api=owned)


def _redis(config: Mapping[str, Any], required: bool) -> RedisMemoryManager | None:
    url, client = config.get("redis_url"), config.get("redis_client")
    if url is None and client is None:
        if required:
            raise MemoryConfigException('memory_type "redis" needs redis_url (or an async redis_client)')
        return None
    return RedisMemoryManager(
        url, client=client, key_prefix=config.get("key_prefix", "tiermem"), ttl=config.get("ttl", DEFAULT_TTL)
    )
