"""Working memory: an agent's own short-lived results, readable by its team.

Each stashed value is one Redis string under the agent's hash tag with its own TTL (1 hour by
default; an explicit TTL in seconds is honoured to the millisecond; tiers/coordination/working.py).
Writing takes CONTRIBUTOR; reading, one's own or another agent's, takes OBSERVER (a dashboard
reads the team's results).
"""

from __future__ import annotations

from typing import Any

from memory import validation
from memory.team import values
from memory.team.access import AccessTier, AgentCredentials
from memory.team.errors import translated
from memory.team.ttl import TTLStrategy, ttl_ms


@translated("write")
def stash(memory: Any, credentials: AgentCredentials, key: str, value: Any, ttl: Any = None) -> bool:
    credentials.require(AccessTier.CONTRIBUTOR, "stash")
    validation.name(key, "key")
    blob = values.pack(value, f"the value of {key!r}")
    memory.stores.working.put(credentials.agent_id, key, blob, ttl_ms(ttl, TTLStrategy.WORKING_RESULTS))
    return True


@translated("read")
def retrieve(memory: Any, credentials: AgentCredentials, key: str, owner: str | None = None) -> Any:
    """The value, or None when it was never stashed or has expired."""
    credentials.require(AccessTier.OBSERVER, "retrieve")
    validation.name(key, "key")
    owner = credentials.agent_id if owner is None else validation.agent_id(owner)
    blob = memory.stores.working.get(owner, key)
    return None if blob is None else values.unpack(blob)
