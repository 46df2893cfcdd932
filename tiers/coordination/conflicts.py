"""Conflicts in Redis: one string per conflict, under the conflict's own hash tag, with its TTL;
durable on the embedded engine.

Recording is a SET with PX (sent again, the same value). Resolving is a compare-and-set
(resolve.lua): sent again after it ran it finds its own resolution and writes nothing, and the
caller, reading the conflict again, finds it resolved.

A conflict recorded in the earlier key layout (every conflict under one tag) is read there when
its own key does not exist, and resolved in place, keeping its TTL; recording a conflict writes
its own key only, so the earlier copy stays hidden until it expires (7 days at most).
"""

from __future__ import annotations

import functools

from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

RESOLVE = team_source("resolve")
MISSING = -1  # resolve.lua's answer when the key does not exist


class Conflicts:
    def __init__(self, context: Context):
        self.context = context
        self.client = context.client
        self.keys = context.keys
        self._resolve = context.durable_script(RESOLVE)

    def put(self, conflict_id: str, blob: bytes, ttl_ms: int) -> None:
        key = self.keys.conflict(conflict_id)
        write = functools.partial(self.context.write, ("SET", key, blob, "PX", ttl_ms))
        writing("redis", lambda: self.context.durably([(key, "string")], write))

    def get(self, conflict_id: str) -> bytes | None:
        found = reading("redis", lambda: self.client.get(self.keys.conflict(conflict_id)))
        if found is None:
            found = reading("redis", lambda: self.client.get(self.keys.earlier.conflict(conflict_id)))
        return found

    def replace(self, conflict_id: str, read: bytes, resolved: bytes) -> bool:
        """Write ``resolved`` only if the conflict still holds ``read``, keeping its TTL."""
        for key in (self.keys.conflict(conflict_id), self.keys.earlier.conflict(conflict_id)):
            written = int(writing("redis", functools.partial(self._resolve, [key], [read, resolved], [(key, "string")])))
            if written != MISSING:
                return written == 1
        return False
