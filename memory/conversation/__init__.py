"""Conversation working memory: memory managers and the agent that keeps each conversation's context.

    from memory.conversation import AgentInput, InMemoryManager, WorkingMemoryAgent

    agent = WorkingMemoryAgent(memory_manager=InMemoryManager())
    status = await agent.process(AgentInput("My name is Alice", {"conversation_id": "alice-1"}))

Managers: ``InMemoryManager`` (this process), ``RedisMemoryManager`` (``redis.asyncio``),
``DatabaseMemoryManager`` (SQLAlchemy: SQLite or PostgreSQL), ``TieredMemoryManager`` (every
turn an interaction memory in an ``AgentMemoryAPI``). All share ``store``/``retrieve``
and an atomic ``update``.
"""

from memory.conversation.agent import AgentInput, IAgentInput, TurnOutcome, WorkingMemoryAgent
from memory.conversation.database_manager import DatabaseMemoryManager
from memory.conversation.errors import ConversationConflictError, InvalidConversationError, LLMClientError
from memory.conversation.factory import MEMORY_TYPES, create_memory_agent
from memory.conversation.in_memory import InMemoryManager
from memory.conversation.llm import LLMClient
from memory.conversation.manager import MemoryManager
from memory.conversation.redis_manager import RedisMemoryManager
from memory.conversation.state import ConversationMemory, Turn, validate_conversation_id
from memory.conversation.tiered_manager import ArchivedTurn, TieredMemoryManager
from memory.conversation.working_memory import WorkingMemoryPolicy

__all__ = [
    "WorkingMemoryAgent",
    "AgentInput",
    "IAgentInput",
    "TurnOutcome",
    "create_memory_agent",
    "MEMORY_TYPES",
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
    "validate_conversation_id",
    "InvalidConversationError",
    "ConversationConflictError",
    "LLMClientError",
]
