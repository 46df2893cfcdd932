"""Staged patterns in Redis: Lua scripts that stage, and take and finish decisions, atomically.

What PatternStaging (memory/team/patterns.py) needs from where staged patterns live
(base.PatternStore), on a Redis server shared by many processes. The embedded engine keeps the
same state in its process instead (tiers/coordination/local_patterns.py).

Sent again after a lost reply: staging takes effect once (its answer depends on whether a
validator took the pattern meanwhile); a decision's take, finish and release are idempotent by
the validator's token (its own lease found again is its own decision: the take answers the
pattern again, the finish and release change nothing).
"""

from __future__ import annotations

from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

STAGE = team_source("stage")
TAKE_DECISION = team_source("take_decision")
FINISH_DECISION = team_source("finish_decision")
RELEASE_DECISION = team_source("release_decision")


class RedisPatternStore:
    def __init__(self, context: Context):
        self.client = context.client
        self.keys = context.keys
        self._stage = context.script(STAGE, once=True)
        self._take = context.script(TAKE_DECISION)
        self._finish = context.script(FINISH_DECISION)
        self._release = context.script(RELEASE_DECISION)

    def stage(self, pattern_id: str, body: bytes, ttl_ms: int, staged_ms: int) -> int:
        keys = self.keys
        return int(writing("redis", lambda: self._stage(
            keys=[keys.staged(pattern_id), keys.staged_index(), keys.promoted(pattern_id), keys.decision(pattern_id)],
            args=[body, ttl_ms, pattern_id, staged_ms],
        )))

    def staged(self, forget_expired: bool = True) -> list[bytes]:
        index = self.keys.staged_index()
        ids = [member.decode() for member in reading("redis", lambda: self.client.zrange(index, 0, -1))]
        if not ids:
            return []
        blobs = reading("redis", lambda: self.client.mget([self.keys.staged(pid) for pid in ids]))
        gone = [pid for pid, blob in zip(ids, blobs) if blob is None]
        if gone and forget_expired:
            writing("redis", lambda: self.client.zrem(index, *gone))
        return [blob for blob in blobs if blob is not None]

    def take_decision(self, pattern_id: str, token: str, lease_ms: int) -> bytes | None:
        keys = [self.keys.staged(pattern_id), self.keys.decision(pattern_id)]
        return writing("redis", lambda: self._take(keys=keys, args=[token, lease_ms])) or None

    def finish_decision(self, pattern_id: str, token: str, promoted: bool) -> None:
        keys = self.keys
        writing("redis", lambda: self._finish(
            keys=[keys.staged(pattern_id), keys.staged_index(), keys.decision(pattern_id), keys.promoted(pattern_id)],
            args=[token, pattern_id, "1" if promoted else ""],
        ))

    def release_decision(self, pattern_id: str, token: str) -> None:
        writing("redis", lambda: self._release(keys=[self.keys.decision(pattern_id)], args=[token]))
