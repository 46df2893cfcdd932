"""What the coordination layer needs from where tasks, staged patterns and signals live.

Each contract has two implementations that the same tests run against: on a Redis server (Lua
scripts shared by every process) and on the embedded engine (state in this process, which owns
the data directory). memory/team checks and interprets; these only keep bytes. Times are unix ms
passed in by the caller, except where a store says it reads a clock.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class TaskStore(Protocol):
    """One team's task queue (tiers/coordination/tasks.py, local_tasks.py)."""

    def add(self, task_id: str, body: bytes, priority: int, task_type: str, now_ms: int) -> bool:
        """Queue a task; False if the team already has the id."""

    def claim(
        self, task_type: str, agent: str, now_ms: int, lease_ms: int, count: int, beat: bool
    ) -> list[tuple[bytes, int]]:
        """Requeue lapsed leases of the type, then lease up to ``count`` best pending tasks to
        ``agent``: their (body, attempts); ``beat`` records the claimer's heartbeat too."""

    def requeue_lapsed(self, task_type: str, now_ms: int, lease_ms: int) -> None:
        """Return the type's lapsed leases to the queue (or extend them from a later heartbeat)."""

    def holder(self, task_id: str, now_ms: int) -> tuple[bytes | None, str | None]:
        """(body, claimer); None for an unknown or forgotten task, or one nobody holds."""

    def complete(self, task_id: str, agent: str, record: bytes, task_type: str, now_ms: int,
                 forget_at_ms: int) -> tuple[int, str]:
        """(1, holder) done, kept until ``forget_at_ms``; (0, '') not claimed; (-1, holder) held by another agent."""

    def result(self, task_id: str, now_ms: int) -> bytes | None:
        """The result record of a completed task, None once its retention has ended."""

    def types(self) -> list[str]:
        """The task types queued, sorted."""

    def pending(self, task_type: str) -> list[bytes]:
        """Bodies of the type's pending tasks, in claim order."""

    def completed_counts(self) -> dict[str, int]:
        """``total``, ``agent:<id>`` and ``type:<type>`` completion counts."""


class PatternStore(Protocol):
    """Staged patterns and the decision leases on them (tiers/coordination/patterns.py,
    local_patterns.py). Expiry follows the wall clock, as Redis's own does."""

    def stage(self, pattern_id: str, body: bytes, ttl_ms: int, staged_ms: int) -> int:
        """1 staged (for ``ttl_ms``), 0 already in the library, -1 a validator is deciding it now."""

    def staged(self, forget_expired: bool = True) -> list[bytes]:
        """Bodies of the staged patterns, oldest first; ``forget_expired`` drops expired ones from the index."""

    def take_decision(self, pattern_id: str, token: str, lease_ms: int) -> bytes | None:
        """The staged body if the validator holding ``token`` may decide the pattern, else None."""

    def finish_decision(self, pattern_id: str, token: str, promoted: bool) -> None:
        """Unstage a decided pattern (``promoted``: never stage it again), if ``token`` still decides it."""

    def release_decision(self, pattern_id: str, token: str) -> None:
        """Drop the decision lease if ``token`` still holds it."""


class Received(NamedTuple):
    """A signal as one recipient is given it (its data still msgpack)."""

    kind: str
    sender: str
    blob: bytes
    target: str | None  # None: a broadcast
    sent_at: float  # unix s, as the sender stamped it
    entry_id: str


class SignalStore(Protocol):
    """Signal streams per recipient and type, and broadcasts per type, each read past the
    reader's cursor (tiers/coordination/signals.py, local_signals.py)."""

    def send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None, sent_at: float) -> str:
        """Append to each recipient's stream (None: the broadcast stream); the (first) entry id."""

    def receive(self, me: str, kind: str | None, timeout: float) -> list[Received]:
        """What ``me`` was not given yet (of one type, or every type), in sending order, moving
        its cursors past it; waits up to ``timeout`` s for a signal when there is none."""
