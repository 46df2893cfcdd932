"""The agent registry: which agents have stored under a key prefix, without SCAN.

A SCAN for the agents' meta keys walks every key of every primary; the registry is a few sets
(``REGISTRY_SHARDS``, an agent's shard by CRC32 of its id, each shard its own hash tag so they
spread over a cluster's primaries), read in one round trip. An engine registers an agent before
its first store in the process (one SADD per shard it touches, sent with the others), so the
registry is a superset of the agents holding memories in Redis: an agent whose memories were
cleared stays in it and is filtered out by who holds memories.

The registry is derived: a prefix written before it existed, or a Redis that lost its data,
has no ``built`` marker, and the first listing rebuilds it by SCAN over every primary.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from typing import Any

from redis.exceptions import ResponseError

from tiers import cluster
from tiers.keys import KeySchema
from tiers.transport import NotSent, ReplyLost, exchange

REGISTRY_SHARDS = 16


class AgentRegistry:
    def __init__(self, client: Any, keys: KeySchema, wait: int | None = None):
        """``wait``: a Redis server's client, whose registrations go through tiers/transport.py
        and wait for that many replicas, as the stores after them do (None: the embedded engine)."""
        self.client = client
        self.keys = keys
        self.wait = wait
        self._known: set[str] = set()  # registered by this process since Redis last lost its data
        self._lock = threading.Lock()

    def shard(self, agent_id: str) -> str:
        return self.keys.registry(zlib.crc32(agent_id.encode()) % REGISTRY_SHARDS)

    def register(self, agent_ids: Iterable[str]) -> None:
        """Add agents this process has not registered yet (one round trip when there are any)."""
        self._add([agent_id for agent_id in dict.fromkeys(agent_ids) if agent_id not in self._known])

    def forget_known(self) -> None:
        """Redis lost its data (restarted empty, flushed): register every agent again."""
        with self._lock:
            self._known.clear()

    def agents(self) -> list[str]:
        """Every registered agent (rebuilt by SCAN first when the registry was never built)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(REGISTRY_SHARDS):
            pipe.smembers(self.keys.registry(shard))
        pipe.get(self.keys.registry_built())
        *members, built = pipe.execute()
        found = {member.decode() if isinstance(member, bytes) else member for shard in members for member in shard}
        if built is None:
            scanned = self._scan()
            self._add(scanned)
            self.client.set(self.keys.registry_built(), 1)
            found.update(scanned)
        return sorted(found)

    def _add(self, agent_ids: list[str]) -> None:
        if not agent_ids:
            return
        by_shard: dict[str, list[str]] = {}
        for agent_id in agent_ids:
            by_shard.setdefault(self.shard(agent_id), []).append(agent_id)
        if self.wait is None:
            pipe = self.client.pipeline(transaction=False)
            for key, members in by_shard.items():
                pipe.sadd(key, *members)
            pipe.execute()
        else:  # SADD is harmless to send again
            commands = [("SADD", key, *members) for key, members in by_shard.items()]
            try:
                replies = exchange(self.client, commands, self.wait)
            except (NotSent, ReplyLost):
                replies = exchange(self.client, commands, self.wait)
            failed = next((reply for reply in replies if isinstance(reply, ResponseError)), None)
            if failed is not None:
                raise failed
        with self._lock:
            self._known.update(agent_ids)

    def _scan(self) -> list[str]:
        servers = cluster.primaries(self.client) if cluster.is_cluster(self.client) else [self.client]
        return list(dict.fromkeys(agent for server in servers for agent in self.keys.scan_agents(server)))
