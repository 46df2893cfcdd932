"""TeamSession: a shared room for the agents working on one piece of work.

Three hashes under the session's hash tag (info, participants, shared context) that expire
together 30 minutes (or ``ttl`` seconds) after the last activity of a member: each of its calls
renews them in the same MULTI (tiers/coordination/sessions.py). Building a TeamSession for an id
that exists joins it (purpose and creation time are set only once, with HSETNX); participants
are hash fields, so concurrent joins are all kept.

An OBSERVER (a dashboard) opens a session that exists and reads it without renewing anything;
opening one that does not exist raises AccessDeniedError, since creating it takes CONTRIBUTOR.
"""

from __future__ import annotations

from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import translated
from memory.team.store import shared
from memory.team.ttl import TTLStrategy, ttl_ms
from tiers.coordination.keys import signal_type as check_signal_type

MAX_PURPOSE = 4096  # characters


class TeamSession:
    """``credentials`` act for this object (default: the memory's own, a CONTRIBUTOR)."""

    def __init__(
        self,
        memory: Any,
        session_id: str,
        purpose: str = "",
        credentials: AgentCredentials | None = None,
        ttl: float | None = None,
    ):
        self.memory = shared(memory)
        self.session_id = validation.name(session_id, "session_id")
        self.credentials = memory.resolve_credentials(credentials)
        purpose = validation.text(purpose, "purpose", MAX_PURPOSE)
        self.ttl_ms = ttl_ms(ttl, TTLStrategy.SESSION)
        self._store = memory.stores.session(self.session_id)
        if self.credentials.can_stage():
            self._open(purpose)
        else:
            self._look_in()

    def _renewal(self) -> int | None:
        """How long a call renews the session: a member's does (it is activity), an observer's not."""
        return self.ttl_ms if self.credentials.can_stage() else None

    @translated("write")
    def _open(self, purpose: str) -> None:
        self._store.open(purpose, self.memory.clock(), self.ttl_ms)

    @translated("read")
    def _look_in(self) -> None:
        """An observer's open: the session must exist already."""
        if not self._store.exists():
            operation = f"creating team session {self.session_id!r} (it does not exist)"
            self.credentials.require(AccessTier.CONTRIBUTOR, operation)

    @translated("write")
    def add_agent(self, agent: str) -> bool:
        """Add a participant (CONTRIBUTOR). True if it was not one already."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "TeamSession.add_agent")
        validation.agent_id(agent)
        return self._store.join(agent, self.memory.clock(), self.ttl_ms)

    @translated("write")
    def share(self, key: str, value: Any) -> bool:
        """Put ``value`` in the session's shared context (CONTRIBUTOR)."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "TeamSession.share")
        validation.name(key, "key")
        self._store.share(key, values.pack(value, f"shared value {key!r}"), self.ttl_ms)
        return True

    @translated("read")
    def get(self, key: str, default: Any = None) -> Any:
        """A shared value (OBSERVER), or ``default``."""
        self.credentials.require(AccessTier.OBSERVER, "TeamSession.get")
        validation.name(key, "key")
        blob = self._store.get(key, self._renewal())
        return default if blob is None else values.unpack(blob)

    @translated("read")
    def get_info(self) -> dict[str, Any]:
        """session_id, purpose, created_at, participants (in joining order) and shared keys (OBSERVER)."""
        self.credentials.require(AccessTier.OBSERVER, "TeamSession.get_info")
        info, participants, shared_keys = self._store.read(self._renewal())
        joined = sorted(participants.items(), key=lambda item: (float(item[1]), item[0]))
        created = info.get(b"created_at")
        return {
            "session_id": self.session_id,
            "purpose": info.get(b"purpose", b"").decode(),
            "created_at": float(created) if created is not None else None,
            "participants": [agent.decode() for agent, _ in joined],
            "shared_keys": sorted(key.decode() for key in shared_keys),
        }

    def signal(self, signal_type: str, data: Any = None) -> str:
        """Send a signal to every current participant (CONTRIBUTOR); the sender is these credentials."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "TeamSession.signal")
        check_signal_type(signal_type)
        values.pack(data, "signal data")  # refused before reading the participants renews the session
        participants = self.get_info()["participants"]
        return self.memory.signals.send(self.credentials, signal_type, data, recipients=participants)
