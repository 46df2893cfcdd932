"""A team's agents in Redis: their last heartbeats and their capabilities, on both engines.

Every write here is idempotent (HSET, ZADD of a given time), so redis-py sending one again after
a broken connection changes nothing.
"""

from __future__ import annotations

from tiers.coordination.context import Context
from tiers.failures import reading, writing


class TeamAgents:
    def __init__(self, context: Context, team_id: str):
        self.client = context.client
        self.keys = context.keys.team(team_id)

    def register(self, agent: str, capabilities: bytes, now_ms: int) -> None:
        """Keep the agent's capabilities (msgpack) and record a heartbeat, in one MULTI."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.capabilities, agent, capabilities)
        pipe.zadd(self.keys.agents, {agent: now_ms})
        writing("redis", pipe.execute)

    def beat(self, agent: str, now_ms: int) -> None:
        writing("redis", lambda: self.client.zadd(self.keys.agents, {agent: now_ms}))

    def last_beat(self, agent: str) -> float | None:
        """The agent's last heartbeat (unix ms), None if it was never seen."""
        return reading("redis", lambda: self.client.zscore(self.keys.agents, agent))

    def seen_since(self, since_ms: int) -> list[str]:
        """Agents whose last heartbeat is at or after ``since_ms``, oldest first."""
        found = reading("redis", lambda: self.client.zrangebyscore(self.keys.agents, since_ms, "+inf"))
        return [agent.decode() for agent in found]

    def capabilities(self, agent: str) -> bytes | None:
        return reading("redis", lambda: self.client.hget(self.keys.capabilities, agent))
