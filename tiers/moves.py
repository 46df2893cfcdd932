"""What maintenance keeps in Redis about its moves: each agent's lease and move journal.

    <prefix>:{<agent>}:lock    string  the maintenance lease's token (SET NX PX)
    <prefix>:{<agent>}:moves   hash    "<from>><to>" -> msgpack list of memory ids in flight

The lease makes one process at a time maintain an agent; the journal names the memories of a move
between IM and LTM (two stores, no transaction across them) until both writes are done, so a
crashed maintainer's move is finished by the next one. Every operation here is safe to send again.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgpack

from tiers.failures import reading, writing
from tiers.keys import KeySchema
from tiers.scripts import Scripts


class Leases:
    def __init__(self, client: Any, keys: KeySchema, scripts: Scripts):
        self.client, self.keys, self.scripts = client, keys, scripts

    def acquire(self, agent_id: str, ttl_ms: int) -> str | None:
        """A new token if the agent's lease was free (now held for ``ttl_ms``), else None."""
        token = secrets.token_hex(8)
        acquired = writing("redis", lambda: self.client.set(self.keys.lock(agent_id), token, nx=True, px=ttl_ms))
        if acquired:
            return token
        # a SET whose reply was lost and that redis-py sent again finds its own token
        held = reading("redis", lambda: self.client.get(self.keys.lock(agent_id)))
        return token if held == token.encode() else None

    def renew(self, agent_id: str, token: str, ttl_ms: int) -> bool:
        """Extend the lease if ``token`` still holds it."""
        return bool(writing("redis", lambda: self.scripts.call("renew", [self.keys.lock(agent_id)], [token, ttl_ms])))

    def release(self, agent_id: str, token: str) -> None:
        writing("redis", lambda: self.scripts.call("release", [self.keys.lock(agent_id)], [token]))

    def break_lease(self, agent_id: str) -> None:
        """Drop the lease whoever holds it: only for a lease restored from a snapshot, whose
        holder (the process that took the snapshot) is gone."""
        writing("redis", lambda: self.client.delete(self.keys.lock(agent_id)))


class Journal:
    def __init__(self, client: Any, keys: KeySchema):
        self.client, self.keys = client, keys

    def write(self, agent_id: str, direction: str, memory_ids: list[str]) -> None:
        blob = msgpack.packb(memory_ids, use_bin_type=True)
        writing("redis", lambda: self.client.hset(self.keys.moves(agent_id), direction, blob))

    def clear(self, agent_id: str, direction: str) -> None:
        writing("redis", lambda: self.client.hdel(self.keys.moves(agent_id), direction))

    def entries(self, agent_id: str) -> dict[str, list[str]]:
        """Moves in flight: direction -> memory ids."""
        journal = reading("redis", lambda: self.client.hgetall(self.keys.moves(agent_id)))
        return {direction.decode(): msgpack.unpackb(blob, raw=False) for direction, blob in journal.items()}
