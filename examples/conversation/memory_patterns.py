"""Conversation memory patterns: the six scenarios of the working-memory guide, offline.

    python examples/conversation/memory_patterns.py                      # in-memory manager
    python examples/conversation/memory_patterns.py --memory-type tiered # tiermem's tiered engine
    python examples/conversation/memory_patterns.py --memory-type redis --redis-url redis://127.0.0.1:6379/0
    python examples/conversation/memory_patterns.py --memory-type database --db sqlite:///conversations.sqlite

No LLM is needed: without one, the agent keeps a bounded, deterministic working memory built from
the turns. Pass any object with ``async chat(messages)`` as ``llm_client`` to have a model rewrite
it instead. Each scenario returns what it saw, so tests can check it (tests/test_conversation_examples.py).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from typing import Any

from memory.conversation import AgentInput, MemoryManager, WorkingMemoryAgent, create_memory_agent


class ConversationSimulator:
    """Feeds messages of one conversation after another to a working-memory agent."""

    def __init__(self, memory_agent: WorkingMemoryAgent):
        self.memory_agent = memory_agent

    async def add_interaction(self, conversation_id: str, interaction: str) -> str:
        input_data = AgentInput(message=interaction, metadata={"conversation_id": conversation_id})
        return await self.memory_agent.process(input_data)


async def show_memory(manager: MemoryManager, conversation_id: str) -> str:
    found = await manager.retrieve({"conversation_id": conversation_id})
    text = found[0].working_memory if found else "(nothing remembered)"
    print(f"  memory of {conversation_id}:\n    " + text.replace("\n", "\n    "))
    return text


async def basic_memory_operations(agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """1. Context builds up over four turns of one conversation."""
    print("1. Basic memory operations")
    simulator = ConversationSimulator(agent)
    conversation_id = f"user_alice_session_001{run}"
    interactions = [
        "My name is Alice and I work as a software engineer at TechCorp",
        "I'm interested in learning about machine learning for my current project",
        "Specifically, I need help with natural language processing techniques",
        "I prefer practical examples over theoretical explanations",
    ]
    statuses = []
    for i, interaction in enumerate(interactions, 1):
        statuses.append(await simulator.add_interaction(conversation_id, interaction))
        print(f"  interaction {i}: {statuses[-1]}")
    memory = await show_memory(agent.memory_manager, conversation_id)
    return {"conversation_id": conversation_id, "statuses": statuses, "memory": memory, "interactions": interactions}


async def multiple_conversations(agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """2. Two users, two conversation ids, two separate memories."""
    print("2. Multiple conversations")
    simulator = ConversationSimulator(agent)
    alice, bob = f"user_alice_session_001{run}", f"user_bob_session_002{run}"
    bob_interactions = [
        "I'm Bob, a product manager looking to understand AI capabilities",
        "My team is considering implementing chatbots for customer support",
    ]
    statuses = [await simulator.add_interaction(bob, interaction) for interaction in bob_interactions]
    statuses.append(await simulator.add_interaction(alice, "I also want to learn about transformers"))
    return {
        "statuses": statuses,
        "alice": await show_memory(agent.memory_manager, alice),
        "bob": await show_memory(agent.memory_manager, bob),
    }


async def error_handling(agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """3. Missing conversation ids and missing metadata give an error status; nothing is stored."""
    print("3. Error handling")
    no_id = await agent.process(AgentInput(message="This message has no conversation ID", metadata={}))
    no_metadata = await agent.process(AgentInput(message="This message has None metadata", metadata=None))
    bad_id = await agent.process(AgentInput(message="A bad id", metadata={"conversation_id": "no spaces allowed"}))
    for name, status in (("no conversation_id", no_id), ("metadata=None", no_metadata), ("invalid id", bad_id)):
        print(f"  {name}: {status}")
    return {"no_id": no_id, "no_metadata": no_metadata, "bad_id": bad_id}


async def agent_without_memory_manager(llm_client: Any = None, run: str = "") -> dict[str, Any]:
    """4. With no manager the agent still builds a working memory; it just keeps nothing."""
    print("4. Agent without memory manager")
    standalone_agent = WorkingMemoryAgent(llm_client=llm_client, memory_manager=None)
    outcome = await standalone_agent.handle(
        AgentInput(message="Remember that I prefer dark mode", metadata={"conversation_id": f"standalone{run}"})
    )
    print(f"  status: {outcome.status}; stored: {outcome.stored}; memory: {outcome.working_memory!r}")
    return {"status": outcome.status, "stored": outcome.stored, "memory": outcome.working_memory}


async def support_ticket(agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """5. A customer-support ticket: the memory keeps names, amounts and ids as the case goes on."""
    print("5. Advanced memory patterns: a support ticket")
    simulator = ConversationSimulator(agent)
    support_conversation = f"support_ticket_12345{run}"
    support_interactions = [
        "Customer Jane Smith called about billing issue with invoice #4567",
        "Issue: Charged twice for the same service in March 2024",
        "Customer provided transaction IDs: TXN001, TXN002",
        "Resolution: Refunded duplicate charge of $99.99",
        "Customer satisfied, case closed",
    ]
    statuses = [await simulator.add_interaction(support_conversation, line) for line in support_interactions]
    memory = await show_memory(agent.memory_manager, support_conversation)
    return {"conversation_id": support_conversation, "statuses": statuses, "memory": memory}


async def returning_customer(agent: WorkingMemoryAgent, later_agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """6. A customer comes back: a later session (``later_agent``) finds the first visit's context."""
    print("6. Memory retrieval: a returning customer")
    conversation_id = f"customer_carol_assistant{run}"
    first_visit = [
        "Carol Diaz, premium plan, prefers email over phone",
        "Her router model is XR-500; firmware update failed with error E42",
    ]
    statuses = [await ConversationSimulator(agent).add_interaction(conversation_id, line) for line in first_visit]
    found = await later_agent.memory_manager.retrieve({"conversation_id": conversation_id})
    context = found[0].working_memory if found else ""
    print("  context found when Carol returns:\n    " + context.replace("\n", "\n    "))
    later = ConversationSimulator(later_agent)
    statuses.append(await later.add_interaction(conversation_id, "Carol is back: E42 again after reboot"))
    memory = await show_memory(later_agent.memory_manager, conversation_id)
    return {"statuses": statuses, "context_on_return": context, "memory": memory, "first_visit": first_visit}


async def run_scenarios(agent: WorkingMemoryAgent, run: str = "") -> dict[str, Any]:
    """All six scenarios with ``agent`` and its manager; ``run`` suffixes the conversation ids."""
    later_agent = WorkingMemoryAgent(agent.llm_client, agent.memory_manager)  # a later session
    return {
        "basic": await basic_memory_operations(agent, run),
        "multiple": await multiple_conversations(agent, run),
        "errors": await error_handling(agent, run),
        "standalone": await agent_without_memory_manager(agent.llm_client, run),
        "support": await support_ticket(agent, run),
        "returning": await returning_customer(agent, later_agent, run),
    }


async def run_all(config: dict[str, Any], run: str = "") -> dict[str, Any]:
    """The scenarios on the manager ``config`` chooses (``create_memory_agent``'s options)."""
    async with create_memory_agent(config) as agent:
        return await run_scenarios(agent, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-type", choices=["memory", "redis", "database", "tiered"], default="memory")
    parser.add_argument("--redis-url", help="for --memory-type redis (and tiered, to share conversations)")
    parser.add_argument("--key-prefix", default="example", help="Redis key prefix (redis and tiered)")
    parser.add_argument("--db", help="an SQLAlchemy URL, for --memory-type database")
    args = parser.parse_args()
    config: dict[str, Any] = {"memory_type": args.memory_type}
    if args.redis_url:
        config["redis_url"] = args.redis_url
        config["key_prefix"] = args.key_prefix
    if args.memory_type == "database":
        config["db_connection"] = args.db or f"sqlite:///{tempfile.mkdtemp()}/conversations.sqlite"
    if args.memory_type == "tiered":
        from memory.config import MemoryConfig

        config["memory_config"] = MemoryConfig(
            redis_url=args.redis_url or "", key_prefix=args.key_prefix, data_dir=tempfile.mkdtemp()
        )
    results = asyncio.run(run_all(config, run=f"_{uuid.uuid4().hex[:6]}" if args.redis_url or args.db else ""))
    failed = [
        name
        for name, result in results.items()
        if name != "errors" and any(status != "success" for status in result.get("statuses", [result.get("status")]))
    ]
    if failed:
        raise SystemExit(f"\nscenarios with an error status: {', '.join(failed)}")
    print("\nAll six scenarios ran.")


if __name__ == "__main__":
    main()
