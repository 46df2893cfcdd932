"""Conflicts in Redis: one string per conflict with its TTL, durable on the embedded engine.

Recording is a SET with PX (sent again, the same value). Resolving is a compare-and-set
(resolve.lua): sent again after it ran it finds its own resolution and writes nothing, and the
caller, reading the conflict again, finds it resolved.
"""

from __future__ import annotations

from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

RESOLVE = team_source("resolve")


class Conflicts:
    def __init__(self, context: Context):
        self.context = context
        self.client = context.client
        self.keys = context.keys
        self._resolve = context.durable_script(RESOLVE)

    def put(self, conflict_id: str, blob: bytes, ttl_ms: int) -> None:
        key = self.keys.conflict(conflict_id)
        writing("redis", lambda: self.context.durably([(key, "string")], lambda: self.client.set(key, blob, px=ttl_ms)))

    def get(self, conflict_id: str) -> bytes | None:
        return reading("redis", lambda: self.client.get(self.keys.conflict(conflict_id)))

    def replace(self, conflict_id: str, read: bytes, resolved: bytes) -> bool:
        """Write ``resolved`` only if the conflict still holds ``read``, keeping its TTL."""
        key = self.keys.conflict(conflict_id)
        return bool(writing("redis", lambda: self._resolve([key], [read, resolved], [(key, "string")])))
