"""Staged patterns on the embedded engine: base.PatternStore's contract, kept in this process.

The embedded engine belongs to one process, so staging need not interpret Redis commands inside a
Lua script on fakeredis (three of them, ~15-38 us each, plus the call): the state is a few dicts
under the durable copy's lock, and every change is written to that copy (the SQLite file of
durable.py, in the rows the Redis keys of keys.py would have) before the lock is let go, so staged
patterns and promotions survive a restart, even a SIGKILL.

After a restart the durable copy fills the embedded Redis with those keys; the first store on a
server and key prefix reads them and drops them, the process then holding the only live copy.
Expiry is by the wall clock, as Redis's own is: a staged pattern lasts its TTL, a decision lease
the lease it was given. Decision leases are not kept across a restart.
"""

from __future__ import annotations

import time
from typing import Any

from tiers.coordination.context import Context
from tiers.coordination.keys import PATTERN_BUCKETS, TeamKeys
from tiers.failures import writing

_NEVER = -1  # PTTL of a key without expiry


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Patterns:
    """One key prefix's staged patterns; used with the durable copy's lock held."""

    def __init__(self) -> None:
        self.staged: dict[str, tuple[bytes, int]] = {}  # pattern id -> (body, expires at, unix ms)
        self.order: dict[str, int] = {}  # pattern id -> staged at (unix ms): the index's score
        self.promoted: set[str] = set()
        self.decisions: dict[str, tuple[str, int]] = {}  # pattern id -> (token, lease ends, unix ms)

    def body(self, pattern_id: str, now_ms: int) -> bytes | None:
        found = self.staged.get(pattern_id)
        return found[0] if found is not None and found[1] > now_ms else None

    def decider(self, pattern_id: str, now_ms: int) -> str | None:
        found = self.decisions.get(pattern_id)
        return found[0] if found is not None and found[1] > now_ms else None

    def load(self, client: Any, keys: TeamKeys) -> None:
        indices = [keys.bucket_index(bucket) for bucket in range(PATTERN_BUCKETS)]
        promoted = list(client.scan_iter(match=f"{keys.root}{{p:*}}:promoted:*", count=1000))
        self.promoted = {key.decode().rpartition(":promoted:")[2] for key in promoted}
        members = [(member.decode(), int(score))
                   for index in indices for member, score in client.zrange(index, 0, -1, withscores=True)]
        pipe = client.pipeline(transaction=False)
        for pattern_id, _ in members:
            pipe.get(keys.staged(pattern_id))
            pipe.pttl(keys.staged(pattern_id))
        replies = pipe.execute()
        now = _now_ms()
        for (pattern_id, staged_ms), body, pttl in zip(members, replies[0::2], replies[1::2]):
            if body is not None:
                self.staged[pattern_id] = (body, now + pttl if pttl > 0 else 2**62)
                self.order[pattern_id] = staged_ms
        client.delete(*indices, *promoted, *(keys.staged(pattern_id) for pattern_id, _ in members))


class LocalPatternStore:
    """Staged patterns in this process, each change copied durably (RedisPatternStore's methods)."""

    def __init__(self, context: Context, server: Any):
        self.keys = context.keys
        if context.mirror is None:
            raise ValueError("the embedded engine's pattern store needs its durable mirror")
        self._mirror = mirror = context.mirror

        def loaded() -> _Patterns:
            patterns = _Patterns()
            with mirror.lock:
                writing("redis", lambda: patterns.load(context.client, self.keys))
            return patterns

        self._patterns = server.local(("staged-patterns", self.keys.root), loaded)

    def stage(self, pattern_id: str, body: bytes, ttl_ms: int, staged_ms: int) -> int:
        patterns, now = self._patterns, _now_ms()
        with self._mirror.lock:
            if pattern_id in patterns.promoted:
                return 0
            if patterns.decider(pattern_id, now) is not None:
                return -1
            self._mirror.store(
                [(self.keys.staged(pattern_id), "string"), (self.keys.staged_index(pattern_id), f"zmember:{pattern_id}")],
                [body, ttl_ms, staged_ms, _NEVER],
            )
            patterns.staged[pattern_id] = (body, now + ttl_ms)
            patterns.order[pattern_id] = staged_ms
        return 1

    def staged(self, forget_expired: bool = True) -> list[bytes]:
        patterns, now = self._patterns, _now_ms()
        with self._mirror.lock:
            ordered = sorted(patterns.order, key=lambda pattern_id: (patterns.order[pattern_id], pattern_id))
            gone = [pattern_id for pattern_id in ordered if patterns.body(pattern_id, now) is None]
            if gone and forget_expired:  # expired: drop them, and their index rows, whose copies have no expiry
                self._mirror.store(
                    [(self.keys.staged_index(pattern_id), f"zmember:{pattern_id}") for pattern_id in gone], [None, -2] * len(gone)
                )
                for pattern_id in gone:
                    del patterns.order[pattern_id]
                    patterns.staged.pop(pattern_id, None)
            return [patterns.staged[pattern_id][0] for pattern_id in ordered if pattern_id not in gone]

    def take_decision(self, pattern_id: str, token: str, lease_ms: int) -> bytes | None:
        patterns, now = self._patterns, _now_ms()
        with self._mirror.lock:
            body = patterns.body(pattern_id, now)
            if body is None or patterns.decider(pattern_id, now) is not None:
                return None
            patterns.decisions[pattern_id] = (token, now + lease_ms)
            return body

    def finish_decision(self, pattern_id: str, token: str, promoted: bool) -> None:
        patterns = self._patterns
        with self._mirror.lock:
            if patterns.decider(pattern_id, _now_ms()) != token:
                return
            items = [(self.keys.staged(pattern_id), "string"), (self.keys.staged_index(pattern_id), f"zmember:{pattern_id}")]
            replies: list[Any] = [None, -2, None, -2]
            if promoted:
                items.append((self.keys.promoted(pattern_id), "string"))
                replies += [b"1", _NEVER]
            self._mirror.store(items, replies)
            del patterns.decisions[pattern_id]
            patterns.staged.pop(pattern_id, None)
            patterns.order.pop(pattern_id, None)
            if promoted:
                patterns.promoted.add(pattern_id)

    def release_decision(self, pattern_id: str, token: str) -> None:
        patterns = self._patterns
        with self._mirror.lock:
            if patterns.decider(pattern_id, _now_ms()) == token:
                del patterns.decisions[pattern_id]
