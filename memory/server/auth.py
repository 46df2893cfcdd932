"""Who is calling the server: bearer tokens, each naming an access tier and optionally an agent and a team.

Tokens come from a JSON file (``--tokens FILE``) or the ``TIERMEM_TOKENS`` variable (the same JSON), as
a list of objects::

    [{"token": "s3cret", "tier": "contributor", "agent": "scout-1", "team": "alpha"},
     {"token": "ops", "tier": "steward"}]

``tier`` is one of observer (reads), contributor (writes), validator (promotes), steward (administers).
A token with an ``agent`` reaches only that agent's memories and acts as that agent in its team; one with
a ``team`` reaches only that team. With no tokens configured every caller is :data:`LOCAL` (steward, no
bounds) and the server must listen on loopback only (:func:`check_bind`).

The route code (REST and MCP alike) asks :func:`caller` who is calling; :data:`current_principal` is set
per request by ``bearer.BearerAuth`` (HTTP) or once by the stdio MCP runner.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory import validation
from memory.team.access import AccessTier
from memory.team.errors import AccessDeniedError
from tiers.errors import MemoryAPIException, MemoryConfigException

TOKENS_VARIABLE = "TIERMEM_TOKENS"
_FIELDS = {"token", "tier", "agent", "team"}


@dataclass(frozen=True)
class Principal:
    """A caller: a name for logs and errors, the tier it reaches, and the agent and team it is bound to."""

    name: str
    tier: AccessTier
    agent: str | None = None
    team: str | None = None

    def require(self, tier: AccessTier, operation: str) -> None:
        """AccessDeniedError unless this caller reaches ``tier``."""
        if self.tier < tier:
            raise AccessDeniedError(self.name, self.tier, tier, operation)

    def require_agent(self, agent_id: str, operation: str) -> None:
        """OutOfBoundsError when this caller is bound to another agent."""
        if self.agent is not None and agent_id != self.agent:
            raise OutOfBoundsError(self, operation, f"agent {agent_id!r}", f"agent {self.agent!r}")

    def require_team(self, team_id: str, operation: str) -> None:
        """OutOfBoundsError when this caller is bound to another team."""
        if self.team is not None and team_id != self.team:
            raise OutOfBoundsError(self, operation, f"team {team_id!r}", f"team {self.team!r}")


class OutOfBoundsError(AccessDeniedError):
    """The caller's token is bound to another agent or team than the one asked for."""

    def __init__(self, principal: Principal, operation: str, asked: str, bound: str):
        MemoryAPIException.__init__(self, f"{operation} on {asked} is refused: this token is bound to {bound}")
        self.agent_id = principal.name
        self.tier = self.required = principal.tier
        self.operation = operation


LOCAL = Principal("local", AccessTier.STEWARD)
# None where no caller was named (a public path without a token): caller() refuses there
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("tiermem_principal", default=None)


class UnauthenticatedError(MemoryAPIException):
    """No caller is named: the request carried no known token."""


def caller() -> Principal:
    """The caller of the request or tool call being served; UnauthenticatedError when none is named."""
    principal = current_principal.get()
    if principal is None:
        raise UnauthenticatedError("a bearer token is required")
    return principal


class TokenTable:
    """The configured tokens; ``lookup`` compares in constant time so a token cannot be guessed by timing."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._principals = dict(principals)

    @property
    def configured(self) -> bool:
        return bool(self._principals)

    def lookup(self, token: str) -> Principal | None:
        found = None
        for known, principal in self._principals.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        return found

    def from_header(self, authorization: str | None) -> Principal | None:
        """The caller an ``Authorization: Bearer <token>`` header names; LOCAL when no tokens are configured;
        None when the header is missing, malformed or names no token."""
        if not self.configured:
            return LOCAL
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.lookup(token.strip())

    @classmethod
    def parse(cls, entries: Any, source: str) -> TokenTable:
        """Tokens from their JSON form; MemoryConfigException names the entry that is wrong."""
        if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
            raise MemoryConfigException(f"{source}: tokens must be a JSON list of objects")
        principals: dict[str, Principal] = {}
        for position, entry in enumerate(entries):
            where = f"{source}: token {position}"
            if not isinstance(entry, Mapping):
                raise MemoryConfigException(f"{where} must be an object")
            unknown = set(entry) - _FIELDS
            if unknown:
                raise MemoryConfigException(f"{where} has unknown fields {sorted(unknown)}")
            token = entry.get("token")
            if not isinstance(token, str) or len(token) < 8 or token != token.strip():
                raise MemoryConfigException(f"{where}: token must be a string of 8 or more characters, no spaces around")
            if token in principals:
                raise MemoryConfigException(f"{where}: the same token is given twice")
            tier_name = entry.get("tier")
            try:
                tier = AccessTier[str(tier_name).upper()]
            except KeyError:
                raise MemoryConfigException(f"{where}: tier must be one of observer, contributor, validator, steward") from None
            bounds = {}
            for field in ("agent", "team"):
                value = entry.get(field)
                if value is not None:
                    try:
                        bounds[field] = validation.agent_id(value, field)
                    except Exception as error:
                        raise MemoryConfigException(f"{where}: {error}") from None
            name = bounds.get("agent") or bounds.get("team") or f"token {position}"
            principals[token] = Principal(name, tier, bounds.get("agent"), bounds.get("team"))
        return cls(principals)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> TokenTable:
        """Tokens from ``path`` if given, else from TIERMEM_TOKENS, else none."""
        environ = os.environ if environ is None else environ
        if path is not None:
            source, text = str(path), _read(Path(path))
        elif environ.get(TOKENS_VARIABLE):
            source, text = TOKENS_VARIABLE, environ[TOKENS_VARIABLE]
        else:
            return cls({})
        try:
            entries = json.loads(text)
        except ValueError as error:
            raise MemoryConfigException(f"{source}: not JSON ({error})") from None
        return cls.parse(entries, source)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise MemoryConfigException(f"tokens file {path}: {error.strerror}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: TokenTable) -> None:
    """Refuse to listen beyond loopback when no token guards the server."""
    if not tokens.configured and not is_loopback(host):
        raise MemoryConfigException(
            f"refusing to listen on {host!r} without tokens: configure tokens (--tokens FILE or {TOKENS_VARIABLE}) "
            "or listen on 127.0.0.1"
        )
