"""One process of the multi-process conversation tests: many concurrent turns on one conversation.

    python tests/conversation_worker.py KIND PREFIX CONVERSATION WORKER TURNS DATA_DIR

KIND is ``redis`` (a RedisMemoryManager) or ``tiered-redis`` (a TieredMemoryManager on an engine
on the real Redis, its head in Redis, its LTM in DATA_DIR/ltm.sqlite shared by all workers).
The worker says it is ready, waits for the test's go (so every worker's turns overlap), sends
TURNS turns at once (asyncio.gather) with a model that takes a few milliseconds, and prints
its statuses and how many of its writes lost a version race as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import redis

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from memory.api import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402
from memory.conversation import (  # noqa: E402
    AgentInput,
    RedisMemoryManager,
    TieredMemoryManager,
    WorkingMemoryAgent,
    WorkingMemoryPolicy,
)
from tiers import cluster  # noqa: E402

REDIS_URL = os.environ.get("TIERMEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


class SlowModel:
    """Appends the message to the memory after a short think: a wide read-modify-write window."""

    async def chat(self, messages):
        await asyncio.sleep(0.003)
        prompt = messages[-1]["content"]
        current = prompt.split("Current working memory:\n", 1)[1].split("\n\nNew message", 1)[0]
        message = prompt.rsplit("):\n", 1)[1]
        return {"llm_response": message if current.startswith("(empty") else f"{current}\n{message}", "usage": {}}


async def main(kind: str, prefix: str, conversation_id: str, worker: int, turns: int, data_dir: str) -> None:
    api = None
    head = RedisMemoryManager(REDIS_URL, key_prefix=prefix)
    if kind == "redis":
        manager = head
    else:
        config = MemoryConfig(redis_url=REDIS_URL, key_prefix=prefix, data_dir=os.path.join(data_dir, f"w{worker}"),
                              ltm_config={"db_path": os.path.join(data_dir, "ltm.sqlite")})
        api = AgentMemoryAPI(config)
        manager = TieredMemoryManager(api, head=head)
    agent = WorkingMemoryAgent(SlowModel(), manager, policy=WorkingMemoryPolicy(max_chars=1_000_000, keep_turns=100_000))
    sync = cluster.connect_url(REDIS_URL, socket_timeout=70, connect_timeout=2) if cluster.is_cluster_url(REDIS_URL) \
        else redis.Redis.from_url(REDIS_URL)
    sync.incr(f"{prefix}:ready")
    if sync.blpop([f"{prefix}:go"], timeout=60) is None:
        raise SystemExit("no go from the test within 60 s")
    statuses = await asyncio.gather(
        *(agent.process(AgentInput(f"w{worker}-t{i}", {"conversation_id": conversation_id})) for i in range(turns))
    )
    print(json.dumps({"statuses": statuses, "conflicts": manager.conflicts}))
    await manager.close()
    if api is not None:
        api.close()
    sync.close()


if __name__ == "__main__":
    kind, prefix, conversation_id, worker, turns, data_dir = sys.argv[1:]
    asyncio.run(main(kind, prefix, conversation_id, int(worker), int(turns), data_dir))
