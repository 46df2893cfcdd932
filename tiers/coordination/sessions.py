"""A team session in Redis: three hashes under the session's hash tag (info, participants, shared
context) that every member's call renews together, in the same MULTI (one slot, so a Redis
Cluster runs it too; its replies come back unparsed there, hence hash_reply); durable on the
embedded engine.

The MULTI blocks hold only commands that are idempotent and whose answers go unused (HSETNX,
HSET, PEXPIRE, reads), so redis-py sending one again after a broken connection leaves the session
as one run would. A join answers whether the agent is new, which a second run would deny, so it
is a script that takes effect once (join.lua).
"""

from __future__ import annotations

from typing import Any

from tiers.coordination.context import Context, hash_reply, team_source
from tiers.failures import reading, writing

JOIN = team_source("join")


class SessionStore:
    """One session's keys. ``ttl_ms`` renews all three; None (an observer's read) renews nothing."""

    def __init__(self, context: Context, session_id: str):
        self.context = context
        self.client = context.client
        self.session_id = session_id
        self.info_key, self.participants_key, self.shared_key = context.keys.session(session_id)
        self._items = [(self.info_key, "hash"), (self.participants_key, "hash"), (self.shared_key, "hash")]
        self._join = context.durable_script(JOIN, once=True)

    def _run(self, pipe: Any, ttl_ms: int | None) -> list[Any]:
        if ttl_ms is None:
            return pipe.execute()
        for key, _ in self._items:
            pipe.pexpire(key, ttl_ms)
        return self.context.durably(self._items, pipe.execute)

    def open(self, purpose: str, created_at: float, ttl_ms: int) -> None:
        """Create the session, or join the one that exists (its purpose and creation time stay)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(self.info_key, "session_id", self.session_id)
        pipe.hsetnx(self.info_key, "purpose", purpose)
        pipe.hsetnx(self.info_key, "created_at", repr(created_at))
        writing("redis", lambda: self._run(pipe, ttl_ms))

    def exists(self) -> bool:
        return bool(reading("redis", lambda: self.client.exists(*(key for key, _ in self._items))))

    def join(self, agent: str, joined_at: float, ttl_ms: int) -> bool:
        """Add a participant; True if it was not one already."""
        keys = [self.info_key, self.participants_key, self.shared_key]
        args = [agent, repr(joined_at), self.session_id, ttl_ms]
        return bool(writing("redis", lambda: self._join(keys, args, self._items)))

    def share(self, key: str, blob: bytes, ttl_ms: int) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.shared_key, key, blob)
        writing("redis", lambda: self._run(pipe, ttl_ms))

    def get(self, key: str, ttl_ms: int | None) -> bytes | None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self.shared_key, key)
        return reading("redis", lambda: self._run(pipe, ttl_ms))[0]

    def read(self, ttl_ms: int | None) -> tuple[dict[bytes, bytes], dict[bytes, bytes], list[bytes]]:
        """(info, participants: agent -> joined at, shared keys)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.info_key)
        pipe.hgetall(self.participants_key)
        pipe.hkeys(self.shared_key)
        info, participants, shared_keys = reading("redis", lambda: self._run(pipe, ttl_ms))[:3]
        return hash_reply(info), hash_reply(participants), shared_keys
