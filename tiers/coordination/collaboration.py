"""Collaboration states in Redis: one string per (agent, session) and a per-agent index of the
sessions by when they were persisted, all under the agent's hash tag, durable on the embedded
engine. persist.lua keeps the newest states; the states it drops are those the caller read would
fall out of the index, so the script declares every key it deletes. A persist takes effect once
(once.lua): sent again after another session's persist it would put its session back above that
one."""

from __future__ import annotations

from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

PERSIST = team_source("persist")


class Collaboration:
    def __init__(self, context: Context):
        self.client = context.client
        self.keys = context.keys
        self._persist = context.durable_script(PERSIST, once=True)

    def put(self, agent: str, session_id: str, blob: bytes, now_ms: int, keep: int) -> None:
        """Keep the state as the agent's newest; only the newest ``keep`` states stay."""
        state_key, index = self.keys.collab_state(agent, session_id), self.keys.collab_index(agent)
        # the sessions one more state would push past ``keep`` (their keys are declared to the script)
        older = [s.decode() for s in reading("redis", lambda: self.client.zrange(index, 0, -keep))]
        older = [session for session in older if session != session_id]
        older_keys = [self.keys.collab_state(agent, session) for session in older]
        items = [(state_key, "string"), (index, "zset"), *((key, "string") for key in older_keys)]
        writing("redis", lambda: self._persist(  # the whole index is copied: persist also trims it
            [state_key, index, *older_keys], [blob, session_id, now_ms, keep, *older], items))

    def newest(self, agent: str) -> str | None:
        """The session id of the agent's most recently persisted state."""
        found = reading("redis", lambda: self.client.zrange(self.keys.collab_index(agent), -1, -1))
        return found[0].decode() if found else None

    def get(self, agent: str, session_id: str) -> bytes | None:
        return reading("redis", lambda: self.client.get(self.keys.collab_state(agent, session_id)))
