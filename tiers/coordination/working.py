"""Working memory in Redis: one string per (agent, key) with its own TTL, durable on the embedded engine.

A stash is a SET with PX: sent again it stores the same value, its TTL counted from then (so it
waits for replicas as the scripted writes do).
"""

from __future__ import annotations

from tiers.coordination.context import Context
from tiers.failures import reading, writing


class WorkingMemory:
    def __init__(self, context: Context):
        self.context = context
        self.client = context.client
        self.keys = context.keys

    def put(self, agent: str, key: str, blob: bytes, ttl_ms: int) -> None:
        redis_key = self.keys.working(agent, key)
        writing("redis", lambda: self.context.durably(
            [(redis_key, "string")], lambda: self.context.write(("SET", redis_key, blob, "PX", ttl_ms))))

    def get(self, agent: str, key: str) -> bytes | None:
        return reading("redis", lambda: self.client.get(self.keys.working(agent, key)))
