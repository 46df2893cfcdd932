"""Memory ids: unique, ordered by creation, and safe to share between processes."""

from __future__ import annotations

import hashlib
import random
import secrets
import time


class MemoryIds:
    """Unique, creation-ordered ids: ``<agent>-<ns time, 16 hex><random, 6 hex>-<step>``.

    Redis orders equal scores by member, and the agent prefix is common to all of an agent's
    ids, so the time part makes ties (same step, same importance) fall in creation order; the
    random part keeps two processes from colliding in the same nanosecond.
    """

    def __init__(self) -> None:
        self._last = 0
        self._random = random.Random(secrets.randbits(64))  # seeded from the OS, cheap per id

    def new(self, agent_id: str, step: int) -> str:
        now = time.time_ns()
        if now <= self._last:
            now = self._last + 1
        self._last = now
        return f"{agent_id}-{now:016x}{self._random.getrandbits(24):06x}-{step}"

    @staticmethod
    def keyed(agent_id: str, step: int, key: str, position: int) -> str:
        """The id of the record at ``position`` of a store with idempotency key ``key``: the same
        every time, so storing the batch again names the same memories. Same shape as the time
        ids (22 hex digits); ties among keyed memories fall in an order fixed by the key."""
        digest = hashlib.blake2b(f"{position}:{key}".encode(), digest_size=11).hexdigest()
        return f"{agent_id}-{digest}-{step}"
