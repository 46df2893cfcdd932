"""A team's agents in Redis: their last heartbeats and their capabilities, on both engines.

Every write here is idempotent (HSET, ZADD of a given time), so redis-py sending one again after
a broken connection changes nothing; with ``wait_replicas`` each waits for replicas.
"""

from __future__ import annotations

from tiers.coordination.context import Context
from tiers.failures import reading, writing


class TeamAgents:
    def __init__(self, context: Context, team_id: str):
        self.context = context
        self.client = context.client
        self.keys = context.keys.team(team_id)

    def register(self, agent: str, capabilities: bytes, now_ms: int) -> None:
        """Keep the agent's capabilities (msgpack), then record a heartbeat: an agent is seen
        alive only once its capabilities are kept."""
        writing("redis", lambda: self.context.write(("HSET", self.keys.capabilities, agent, capabilities),
                                                    ("ZADD", self.keys.agents, now_ms, agent)))

    def beat(self, agent: str, now_ms: int) -> None:
        """A heartbeat, which extends the agent's leases: it waits for replicas as the claim does,
        so a failover cannot roll a lease back."""
        writing("redis", lambda: self.context.write(("ZADD", self.keys.agents, now_ms, agent)))

    def last_beat(self, agent: str) -> float | None:
        """The agent's last heartbeat (unix ms), None if it was never seen."""
        return reading("redis", lambda: self.client.zscore(self.keys.agents, agent))

    def seen_since(self, since_ms: int) -> list[str]:
        """Agents whose last heartbeat is at or after ``since_ms``, oldest first."""
        found = reading("redis", lambda: self.client.zrangebyscore(self.keys.agents, since_ms, "+inf"))
        return [agent.decode() for agent in found]

    def capabilities(self, agent: str) -> bytes | None:
        return reading("redis", lambda: self.client.hget(self.keys.capabilities, agent))
