"""Staged patterns in Redis: Lua scripts that stage, and take and finish decisions, atomically.

What PatternStaging (memory/team/patterns.py) needs from where staged patterns live, on a Redis
server shared by many processes. The embedded engine keeps the same state in its process instead
(memory/team/local_patterns.py), behind the same methods.
"""

from __future__ import annotations

from typing import Any

STAGE = """
-- KEYS[1] staged:<id>, KEYS[2] staged index, KEYS[3] promoted:<id>, KEYS[4] decision:<id>
-- ARGV[1] msgpack pattern, ARGV[2] ttl ms, ARGV[3] pattern id, ARGV[4] staged at (unix ms)
-- returns 1 staged, 0 already in the library, -1 a validator is deciding it right now
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then  -- rarely: which of the two
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
"""

CLAIM_DECISION = """
-- KEYS[1] staged:<id>, KEYS[2] decision:<id>
-- ARGV[1] validator's token, ARGV[2] lease ms
-- returns the staged pattern if this caller may decide it, else false
local body = redis.call('GET', KEYS[1])
if not body then return false end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return body
"""

FINISH_DECISION = """
-- KEYS[1] staged:<id>, KEYS[2] staged index, KEYS[3] decision:<id>, KEYS[4] promoted:<id>
-- ARGV[1] validator's token, ARGV[2] pattern id, ARGV[3] "1" to mark it promoted, "" otherwise
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[4], '1') end
return 1
"""

RELEASE_DECISION = """
-- KEYS[1] decision:<id>; ARGV[1] token. Drop the lease if it is still ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisPatternStore:
    def __init__(self, memory: Any):
        self.client = memory.client
        self.keys = memory.keys
        self._stage = memory.script(STAGE)
        self._take = memory.script(CLAIM_DECISION)
        self._finish = memory.script(FINISH_DECISION)
        self._release = memory.script(RELEASE_DECISION)

    def stage(self, pattern_id: str, body: bytes, ttl_ms: int, staged_ms: int) -> int:
        """1 staged (for ``ttl_ms``), 0 already in the library, -1 a validator is deciding it now."""
        keys = self.keys
        return int(self._stage(
            keys=[keys.staged(pattern_id), keys.staged_index(), keys.promoted(pattern_id), keys.decision(pattern_id)],
            args=[body, ttl_ms, pattern_id, staged_ms],
        ))

    def staged(self, forget_expired: bool = True) -> list[bytes]:
        """Bodies of the staged patterns, oldest first; ``forget_expired`` drops expired ones from the index."""
        index = self.keys.staged_index()
        ids = [member.decode() for member in self.client.zrange(index, 0, -1)]
        if not ids:
            return []
        blobs = self.client.mget([self.keys.staged(pid) for pid in ids])
        gone = [pid for pid, blob in zip(ids, blobs) if blob is None]
        if gone and forget_expired:
            self.client.zrem(index, *gone)
        return [blob for blob in blobs if blob is not None]

    def take_decision(self, pattern_id: str, token: str, lease_ms: int) -> bytes | None:
        """The staged body if this caller (``token``) may decide the pattern, else None."""
        keys = self.keys
        return self._take(keys=[keys.staged(pattern_id), keys.decision(pattern_id)], args=[token, lease_ms]) or None

    def finish_decision(self, pattern_id: str, token: str, promoted: bool) -> None:
        """Unstage a decided pattern (``promoted``: never stage it again), if ``token`` still decides it."""
        keys = self.keys
        self._finish(
            keys=[keys.staged(pattern_id), keys.staged_index(), keys.decision(pattern_id), keys.promoted(pattern_id)],
            args=[token, pattern_id, "1" if promoted else ""],
        )

    def release_decision(self, pattern_id: str, token: str) -> None:
        self._release(keys=[self.keys.decision(pattern_id)], args=[token])
