"""Signals between agents: each reaches each recipient once, in order, and none overwrites another.

SignalBus checks a call (tier, type, recipients, data, timeout) and hands it to the signal store
the connection has (``tiers.coordination``): Redis Streams on a Redis server, shared by every
process (tiers/coordination/signals.py), or the embedded engine's board in this process
(local_signals.py). A broadcast reaches every agent that reads, the sender too (so ``sender``
tells who sent it); a reader asking for one type leaves other types unread; signals older than
the coordination TTL are neither delivered nor kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import translated
from memory.team.ttl import seconds
from tiers.coordination.base import Received, SignalStore
from tiers.coordination.keys import signal_type as check_signal_type


class SignalBus:
    """``clock`` (unix seconds) stamps ``sent_at`` on every signal."""

    def __init__(self, store: SignalStore, clock: Callable[[], float]):
        self._store = store
        self._clock = clock

    @translated("write")
    def send(
        self,
        credentials: AgentCredentials,
        kind: str,
        data: Any = None,
        target_agent: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> str:
        """Send to ``target_agent``, to each of ``recipients``, or (neither) broadcast. Returns the
        (first) entry id, or "" when ``recipients`` is empty."""
        credentials.require(AccessTier.CONTRIBUTOR, "send_signal")
        check_signal_type(kind)
        if target_agent is not None:
            recipients = [target_agent]
        if recipients is not None:
            recipients = list(dict.fromkeys(validation.name(recipient, "target_agent") for recipient in recipients))
            if not recipients:
                return ""
        return self._store.send(credentials.agent_id, kind, values.pack(data, "signal data"), recipients, self._clock())

    @translated("read")
    def receive(
        self, credentials: AgentCredentials, kind: str | None = None, timeout: float = 0.0
    ) -> list[dict[str, Any]]:
        """Signals for this agent not yet given to it, oldest first; waits up to ``timeout`` s for one."""
        credentials.require(AccessTier.OBSERVER, "receive_signals")
        if kind is not None:
            check_signal_type(kind)
        wait = seconds(timeout, "timeout", zero=True)
        return [delivered(signal) for signal in self._store.receive(credentials.agent_id, kind, wait)]


def delivered(signal: Received) -> dict[str, Any]:
    """A signal as a recipient gets it (each recipient its own copy of the data)."""
    return {
        "signal_type": signal.kind,
        "sender": signal.sender,
        "data": values.unpack(signal.blob),
        "target": signal.target,
        "sent_at": signal.sent_at,
        "id": signal.entry_id,
    }
