"""When the maintenance a store makes due runs: in the caller's thread, or in one of this process's.

Stores count each agent's insertions (Writes) and hand the agents due for maintenance to one of
these. ``maintenance_mode="inline"`` runs them before the store returns. ``"background"`` hands
them to a thread and returns at once, so moves overlap the caller's next stores (one waits on
Redis or SQL while the other runs); an agent is never more than one run behind its stores: a store
that finds the agent's run still going with another already queued waits for the first to end.
Either way a failed run is logged and retried when the agent is next due (the stores succeeded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from memory._engine.maintenance import Maintainer
from tiers.errors import MemoryMaintenanceException

log = logging.getLogger(__name__)


def maintain_logged(maintainer: Maintainer, agent_ids: list[str]) -> None:
    """Maintain the agents that have work; a failure is said loudly, not raised (the write succeeded)."""
    try:
        maintainer.run(agent_ids, only_if_needed=True)
    except MemoryMaintenanceException as exc:
        log.warning("automatic maintenance failed, will retry at the next interval: %s", exc)


class InlineMaintenance:
    """Maintenance in the thread of the store that made it due."""

    def __init__(self, maintainer: Maintainer):
        self.maintainer = maintainer

    def schedule(self, agent_ids: Iterable[str]) -> None:
        maintain_logged(self.maintainer, list(agent_ids))

    def settle(self) -> None:
        """Nothing is pending: each run ended before its store returned."""

    def close(self) -> None:
        pass


class BackgroundMaintenance:
    """Maintenance in a thread of its own, at most one run behind each agent's stores."""

    def __init__(self, maintainer: Maintainer, stop_wait: float):
        self.maintainer = maintainer
        self._stop_wait = stop_wait
        self._changed = threading.Condition()
        self._queued: dict[str, None] = {}  # due, not started (in the order they became due)
        self._running: set[str] = set()
        self._stopped = False
        self._thread = threading.Thread(target=self._follow, name="tiermem-maintenance", daemon=True)
        self._thread.start()

    def schedule(self, agent_ids: Iterable[str]) -> None:
        with self._changed:
            for agent_id in agent_ids:
                while agent_id in self._running and agent_id in self._queued and not self._stopped:
                    self._changed.wait()  # two runs behind otherwise: the bound on the tiers' overshoot
                self._queued[agent_id] = None
            self._changed.notify_all()

    def settle(self) -> None:
        """Wait until every run scheduled so far has ended."""
        with self._changed:
            while (self._queued or self._running) and self._thread.is_alive():
                self._changed.wait(timeout=1.0)

    def close(self) -> None:
        """Run what is queued, then stop; a run still going after ``stop_wait`` seconds is left to
        end on its own (its lease expires; the next maintenance of the agent finishes the work)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join(timeout=self._stop_wait)
        if self._thread.is_alive():
            log.warning("background maintenance did not stop within %.0f s; its agents are maintained later",
                        self._stop_wait)

    def _follow(self) -> None:
        while True:
            with self._changed:
                while not self._queued and not self._stopped:
                    self._changed.wait()
                if not self._queued:
                    return
                batch = list(self._queued)
                self._queued.clear()
                self._running.update(batch)
            try:
                maintain_logged(self.maintainer, batch)
            except Exception:  # a bug must not end the thread: the agents stay maintainable
                log.exception("background maintenance of %d agents failed", len(batch))
            finally:
                with self._changed:
                    self._running.difference_update(batch)
                    self._changed.notify_all()


MaintenanceScheduler = InlineMaintenance | BackgroundMaintenance
