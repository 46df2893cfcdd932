"""Staged patterns in Redis: Lua scripts that stage, and take and finish decisions, atomically.

What PatternStaging (memory/team/patterns.py) needs from where staged patterns live
(base.PatternStore), on a Redis server shared by many processes. A pattern's keys (its body, its
decision lease, its promoted mark and its bucket's index) share the bucket's hash tag, so each
script touches one slot, and the 16 buckets spread the staged patterns over a cluster's
primaries; a listing reads every bucket's index in one pipeline and merges them. The embedded
engine keeps the same state in its process instead (tiers/coordination/local_patterns.py).

Sent again after a lost reply: staging takes effect once (its answer depends on whether a
validator took the pattern meanwhile); a decision's take, finish and release are idempotent by
the validator's token (its own lease found again is its own decision: the take answers the
pattern again, the finish and release change nothing).

The earlier key layout kept every staged pattern under one tag: a store's first call carries
those over into their buckets (:meth:`RedisPatternStore.carry_over`), writing
each into its bucket before deleting it from the earlier keys, one process at a time.
"""

from __future__ import annotations

import functools
import secrets
import time

from tiers.coordination.context import Context, team_source
from tiers.coordination.keys import PATTERN_BUCKETS
from tiers.failures import reading, writing

STAGE = team_source("stage")
TAKE_DECISION = team_source("take_decision")
FINISH_DECISION = team_source("finish_decision")
RELEASE_DECISION = team_source("release_decision")
CARRY_OVER = team_source("carry_over")
CARRY_OVER_LOCK_MS = 10_000  # how long one process may take to carry the earlier staged patterns over
CARRY_OVER_POLL_S = 0.05  # how often a store waiting for another process's move looks again


class RedisPatternStore:
    def __init__(self, context: Context):
        self.client = context.client
        self.keys = context.keys
        self._stage = context.script(STAGE, once=True)
        self._take = context.script(TAKE_DECISION)
        self._finish = context.script(FINISH_DECISION)
        self._release = context.script(RELEASE_DECISION)
        self._carry_over = context.script(CARRY_OVER)
        self._carried = False

    def _ready(self) -> None:
        """Before the store's first call: the earlier layout's staged patterns carried over (at
        first use, not on opening, so an unreachable Redis is reported by the first call)."""
        if not self._carried:
            self.carry_over()
            self._carried = True

    def stage(self, pattern_id: str, body: bytes, ttl_ms: int, staged_ms: int) -> int:
        self._ready()
        keys = self.keys
        return int(writing("redis", lambda: self._stage(
            keys=[keys.staged(pattern_id), keys.staged_index(pattern_id), keys.promoted(pattern_id),
                  keys.decision(pattern_id)],
            args=[body, ttl_ms, pattern_id, staged_ms],
        )))

    def staged(self, forget_expired: bool = True) -> list[bytes]:
        self._ready()
        pipe = self.client.pipeline(transaction=False)
        for bucket in range(PATTERN_BUCKETS):
            pipe.zrange(self.keys.bucket_index(bucket), 0, -1, withscores=True)
        indices = reading("redis", pipe.execute)
        members = sorted((score, member.decode()) for index in indices for member, score in index)
        if not members:
            return []
        ids = [pattern_id for _, pattern_id in members]
        pipe = self.client.pipeline(transaction=False)
        for pattern_id in ids:
            pipe.get(self.keys.staged(pattern_id))
        blobs = reading("redis", pipe.execute)
        gone = [pattern_id for pattern_id, blob in zip(ids, blobs) if blob is None]
        if gone and forget_expired:
            pipe = self.client.pipeline(transaction=False)
            for pattern_id in gone:
                pipe.zrem(self.keys.staged_index(pattern_id), pattern_id)
            writing("redis", pipe.execute)
        return [blob for blob in blobs if blob is not None]

    def take_decision(self, pattern_id: str, token: str, lease_ms: int) -> bytes | None:
        self._ready()
        keys = [self.keys.staged(pattern_id), self.keys.decision(pattern_id)]
        return writing("redis", lambda: self._take(keys=keys, args=[token, lease_ms])) or None

    def finish_decision(self, pattern_id: str, token: str, promoted: bool) -> None:
        keys = self.keys
        writing("redis", lambda: self._finish(
            keys=[keys.staged(pattern_id), keys.staged_index(pattern_id), keys.decision(pattern_id),
                  keys.promoted(pattern_id)],
            args=[token, pattern_id, "1" if promoted else ""],
        ))

    def release_decision(self, pattern_id: str, token: str) -> None:
        writing("redis", lambda: self._release(keys=[self.keys.decision(pattern_id)], args=[token]))

    def carry_over(self) -> int:
        """Move the staged patterns of the earlier layout (one index under one tag) into their
        buckets: each written into its bucket (unless the bucket has it) before it leaves the
        earlier keys, so a crash in between leaves it findable, and the next store finishes the
        move. One process at a time (a lock beside the earlier index); the others wait until the
        earlier index is empty, so no listing misses a pattern being moved. Returns how many moved."""
        earlier = self.keys.earlier
        while True:
            members = reading("redis", lambda: self.client.zrange(earlier.staged_index(), 0, -1, withscores=True))
            if not members:
                return 0
            token = secrets.token_hex(8)
            if writing("redis", functools.partial(self.client.set, earlier.moving(), token, nx=True,
                                                  px=CARRY_OVER_LOCK_MS)):
                break
            time.sleep(CARRY_OVER_POLL_S)  # another process is moving them
        moved = 0
        try:
            for member, score in members:
                moved += self._carry_one(member.decode(), int(score))
        finally:
            writing("redis", lambda: self._release(keys=[earlier.moving()], args=[token]))
        return moved

    def _carry_one(self, pattern_id: str, staged_ms: int) -> int:
        earlier, keys = self.keys.earlier, self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.get(earlier.staged(pattern_id))
        pipe.pttl(earlier.staged(pattern_id))
        body, left_ms = reading("redis", pipe.execute)
        moved = 0
        if body is not None and left_ms != -2:
            moved = int(writing("redis", lambda: self._carry_over(
                keys=[keys.staged(pattern_id), keys.staged_index(pattern_id), keys.promoted(pattern_id)],
                args=[body, left_ms, pattern_id, staged_ms],
            )))
        pipe = self.client.pipeline(transaction=False)  # every earlier key has one tag: one slot
        pipe.execute_command("DEL", earlier.staged(pattern_id), earlier.decision(pattern_id))
        pipe.zrem(earlier.staged_index(), pattern_id)
        writing("redis", pipe.execute)
        return moved
