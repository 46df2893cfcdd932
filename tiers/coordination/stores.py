"""The coordination layer's stores on one connection, and which kind each feature gets.

On a Redis server every store is Lua scripts and plain commands that any number of processes
share. On the embedded engine (one process per data directory) task queues, signals and staged
patterns live in the process (local_tasks.py, local_signals.py, local_patterns.py), which no other
process shares, and the durable copy (durable.py) keeps what must survive a SIGKILL; it is made
to agree with its file when the first memory of a key prefix opens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tiers.coordination.agents import TeamAgents
from tiers.coordination.base import PatternStore, SignalStore, TaskStore
from tiers.coordination.collaboration import Collaboration
from tiers.coordination.conflicts import Conflicts
from tiers.coordination.context import Context
from tiers.coordination.durable import DurableMirror
from tiers.coordination.keys import TeamKeys
from tiers.coordination.local_patterns import LocalPatternStore
from tiers.coordination.local_signals import LocalSignals
from tiers.coordination.local_tasks import LocalTaskQueue
from tiers.coordination.patterns import RedisPatternStore
from tiers.coordination.sessions import SessionStore
from tiers.coordination.signals import RedisSignals
from tiers.coordination.tasks import RedisTaskQueue
from tiers.coordination.working import WorkingMemory
from tiers.failures import writing


class Stores:
    """``server``: the embedded engine's server, None on a Redis server; ``clock`` (unix seconds)
    ages the embedded engine's signals; ``signal_ttl_ms``: how long a signal is kept;
    ``wait_replicas``: replicas a write waits for (Redis WAIT; the embedded engine has none)."""

    def __init__(self, client: Any, keys: TeamKeys, server: Any, *, clock: Callable[[], float], signal_ttl_ms: int,
                 wait_replicas: int = 0):
        self._server = server
        mirror = None
        if server is not None:
            mirror = DurableMirror(server.data_dir, server, client)
            try:
                earlier = keys.earlier
                carried = ([earlier.signals, earlier.patterns, earlier.conflicts], keys.carried_over)
                writing("redis", lambda: mirror.restore(keys.root, keys.durable_patterns(), carried))
            except BaseException:
                mirror.close()
                raise
        self.context = Context(client, keys, mirror, wait_replicas)
        self.working = WorkingMemory(self.context)
        self.conflicts = Conflicts(self.context)
        self.collaboration = Collaboration(self.context)
        self.signals: SignalStore = (
            RedisSignals(self.context, signal_ttl_ms) if server is None
            else LocalSignals(server, keys.root, clock, signal_ttl_ms))

    def patterns(self) -> PatternStore:
        """Where staged patterns live: Lua scripts on Redis; in this process with a durable copy
        on the embedded engine."""
        if self._server is None:
            return RedisPatternStore(self.context)
        return LocalPatternStore(self.context, self._server)

    def tasks(self, team_id: str) -> TaskStore:
        """A team's task queue: Lua scripts on Redis; in this process on the embedded engine."""
        if self._server is None:
            return RedisTaskQueue(self.context, team_id)
        return LocalTaskQueue(self.context, self._server, team_id)

    def agents(self, team_id: str) -> TeamAgents:
        """A team's agents' heartbeats and capabilities (Redis keys on both engines)."""
        return TeamAgents(self.context, team_id)

    def session(self, session_id: str) -> SessionStore:
        return SessionStore(self.context, session_id)

    def close(self) -> None:
        if self.context.mirror is not None:
            self.context.mirror.close()
