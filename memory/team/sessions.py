"""TeamSession: a shared room for the agents working on one piece of work.

Three hashes under the session's hash tag (info, participants, shared context) that expire
together 30 minutes (or ``ttl`` seconds) after the last activity of a member: each of its calls
renews them in the same MULTI. Building a TeamSession for an id that exists joins it (purpose and
creation time are set only once, with HSETNX); participants are hash fields, so concurrent joins
are all kept.

An OBSERVER (a dashboard) opens a session that exists and reads it without renewing anything;
opening one that does not exist raises AccessDeniedError, since creating it takes CONTRIBUTOR.
"""

from __future__ import annotations

from typing import Any

from memory.team import values
from memory.team.access import AccessTier, AgentCredentials, agent_id
from memory.team.errors import translated
from memory.team.keys import signal_type as check_signal_type
from memory.team.store import shared
from memory.team.ttl import TTLStrategy, ttl_ms

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
        self.session_id = agent_id(session_id, "session_id")
        self.credentials = memory.resolve_credentials(credentials)
        purpose = values.text(purpose, "purpose", max_length=MAX_PURPOSE)
        self.ttl_ms = ttl_ms(ttl, TTLStrategy.SESSION)
        self.info_key, self.participants_key, self.shared_key = memory.keys.session(session_id)
        self._durable = [(self.info_key, "hash"), (self.participants_key, "hash"), (self.shared_key, "hash")]
        if self.credentials.can_stage():
            self._open(purpose)
        else:
            self._look_in()

    def _renewing(self) -> Any:
        """A MULTI pipeline whose caller adds its commands; ``_commit`` renews the TTLs and runs it."""
        return self.memory.client.pipeline(transaction=True)

    def _commit(self, pipe: Any) -> list[Any]:
        for key, _ in self._durable:
            pipe.pexpire(key, self.ttl_ms)
        with self.memory.durable(self._durable):
            return pipe.execute()

    def _read(self, pipe: Any) -> list[Any]:
        """Run a read: a member's renews the session (it is activity), an observer's changes nothing."""
        return self._commit(pipe) if self.credentials.can_stage() else pipe.execute()

    @translated("write")
    def _open(self, purpose: str) -> None:
        pipe = self._renewing()
        pipe.hsetnx(self.info_key, "session_id", self.session_id)
        pipe.hsetnx(self.info_key, "purpose", purpose)
        pipe.hsetnx(self.info_key, "created_at", repr(self.memory.clock()))
        self._commit(pipe)

    @translated("read")
    def _look_in(self) -> None:
        """An observer's open: the session must exist already."""
        if not self.memory.client.exists(*(key for key, _ in self._durable)):
            operation = f"creating team session {self.session_id!r} (it does not exist)"
            self.credentials.require(AccessTier.CONTRIBUTOR, operation)

    @translated("write")
    def add_agent(self, agent: str) -> bool:
        """Add a participant (CONTRIBUTOR). True if it was not one already."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "TeamSession.add_agent")
        agent_id(agent)
        pipe = self._renewing()
        pipe.hsetnx(self.participants_key, agent, repr(self.memory.clock()))
        pipe.hsetnx(self.info_key, "session_id", self.session_id)  # recreate info if the session had expired
        return bool(self._commit(pipe)[0])

    @translated("write")
    def share(self, key: str, value: Any) -> bool:
        """Put ``value`` in the session's shared context (CONTRIBUTOR)."""
        self.credentials.require(AccessTier.CONTRIBUTOR, "TeamSession.share")
        agent_id(key, "key")
        pipe = self._renewing()
        pipe.hset(self.shared_key, key, values.pack(value, f"shared value {key!r}"))
        self._commit(pipe)
        return True

    @translated("read")
    def get(self, key: str, default: Any = None) -> Any:
        """A shared value (OBSERVER), or ``default``."""
        self.credentials.require(AccessTier.OBSERVER, "TeamSession.get")
        agent_id(key, "key")
        pipe = self._renewing()
        pipe.hget(self.shared_key, key)
        blob = self._read(pipe)[0]
        return default if blob is None else values.unpack(blob)

    @translated("read")
    def get_info(self) -> dict[str, Any]:
        """session_id, purpose, created_at, participants (in joining order) and shared keys (OBSERVER)."""
        self.credentials.require(AccessTier.OBSERVER, "TeamSession.get_info")
        pipe = self._renewing()
        pipe.hgetall(self.info_key)
        pipe.hgetall(self.participants_key)
        pipe.hkeys(self.shared_key)
        info, participants, shared_keys = self._read(pipe)[:3]
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
