"""RedisShortTermMemory: the connection every coordination object shares, and how to get one.

One object per process (or per team) holds the Redis client, the key schema, the clock and the
stores that keep the coordination layer's bytes (``tiers.coordination``: Redis scripts on a
server; in-process twins and, on the embedded engine, the durable copy of what must survive a
restart). The features (working memory, signals, patterns, conflicts, collaboration state) live
in their own modules; the methods here take the caller's :class:`AgentCredentials` and delegate,
so the reference's low-level calls (``memory.receive_signals(credentials, ...)``,
``memory.stage_pattern(...)``) work as written.

Connection resolution is tiermem's (``tiers.connection``): an explicit client or URL; else
``REDIS_URL`` (empty forces the embedded engine); else a Redis on localhost:6379; else the
embedded engine on ``data_dir``. ``TIERMEM_KEY_PREFIX`` sets the key prefix when none is given.
Those two variables are read here and nowhere else.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from memory import validation
from memory.team import collaboration, conflicts, patterns, signals, working
from memory.team.access import AccessTier, AgentCredentials, checked
from memory.team.errors import translated
from memory.team.library import PatternLibrary
from memory.team.ttl import TTLStrategy
from tiers.connection import LOCAL_URL, resolve
from tiers.coordination.connection import (
    CLIENT_TYPES,
    ENGINE_TYPES,
    answers,
    pings,
    saves_to_disk,
    server_client,
    server_stats,
)
from tiers.coordination.keys import TeamKeys
from tiers.coordination.stores import Stores
from tiers.errors import InvalidInputError, MemoryConfigException, TierUnavailableError

DEFAULT_DATA_DIR = ".tiermem"
DEFAULT_PREFIX = "tiermem"

# what each connection option may be: refused with MemoryConfigException before anything connects
_OPTION_KINDS: dict[str, tuple[type, ...]] = {
    "url": (str, type(None)),
    "embedded": (bool,),
    "use_mock": (bool,),
    "client": (*CLIENT_TYPES, type(None)),
    "ltm_url": (str, type(None)),
    "ltm_engine": (*ENGINE_TYPES, type(None)),
    "environ": (Mapping, type(None)),
}


def _option(name: str, value: Any) -> Any:
    kinds = _OPTION_KINDS[name]
    if not isinstance(value, kinds):
        allowed = " or ".join("None" if kind is type(None) else kind.__name__ for kind in kinds)
        raise MemoryConfigException(f"{name} must be {allowed}, got {type(value).__name__} {validation.shown(value)}")
    return value


def _data_dir(value: Any) -> Any:
    """A directory path the file system can take (a str or path, no NUL, no lone surrogate)."""
    try:
        if b"\0" in os.fsencode(value):
            raise ValueError("it holds a NUL character")
    except (TypeError, ValueError) as exc:
        raise MemoryConfigException(f"data_dir must be a directory path, got {validation.shown(value)}: {exc}") from None
    return value


def _environment(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else _option("environ", environ)


class RedisShortTermMemory:
    """Shared short-term memory for a team of agents, on Redis or the embedded engine.

    ``embedded=True`` (or its other name ``use_mock=True``) runs on the embedded engine: fakeredis
    in-process, made durable in ``data_dir``. ``credentials`` are used by calls that pass none (default: agent
    ``"default"`` as CONTRIBUTOR). The clock (unix seconds) drives leases, heartbeats and signal
    ages; Redis itself expires keys by the TTL strategies. ``wait_replicas`` is the engine's
    setting of that name: every write (a claim, a completion, a stash, a signal, a heartbeat) is
    answered once that many replicas hold it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        embedded: bool = False,
        use_mock: bool = False,
        client: Any = None,
        data_dir: str = DEFAULT_DATA_DIR,
        key_prefix: str | None = None,
        credentials: AgentCredentials | None = None,
        ltm_url: str | None = None,
        ltm_engine: Any = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        wait_replicas: int = 0,
    ):
        self._closed = False
        self._library: Any = None
        self._library_guard = threading.Lock()
        self.stores: Stores = None  # type: ignore[assignment]  # set once connected; close() may run before
        self._connection: Any = None
        for name, value in (("url", url), ("embedded", embedded), ("use_mock", use_mock), ("client", client),
                            ("ltm_url", ltm_url), ("ltm_engine", ltm_engine)):
            _option(name, value)
        _data_dir(data_dir)
        if not callable(clock):
            raise MemoryConfigException(f"clock must be a callable returning unix seconds, got {type(clock).__name__}")
        credentials = None if credentials is None else checked(credentials)
        validation.count(wait_replicas, "wait_replicas", minimum=0, maximum=64, error=MemoryConfigException)
        environ = _environment(environ)
        if key_prefix is None:
            key_prefix = environ.get("TIERMEM_KEY_PREFIX") or DEFAULT_PREFIX
        try:
            self.keys = TeamKeys(key_prefix)
        except ValueError as exc:
            raise MemoryConfigException(str(exc)) from None
        if embedded or use_mock:
            url = ""
        self._connection = self._connect(data_dir=data_dir, url=url, client=client, environ=environ)
        self.client = self._connection.client
        self.mode = self._connection.mode
        self.data_dir = data_dir
        self.clock = clock
        self.credentials = credentials or AgentCredentials("default", AccessTier.CONTRIBUTOR)
        self._ltm_url, self._ltm_engine = ltm_url, ltm_engine
        try:
            try:
                self.stores = Stores(self.client, self.keys, self._connection.embedded_server, clock=clock,
                                     signal_ttl_ms=int(TTLStrategy.COORDINATION) * 1000, wait_replicas=wait_replicas)
            except TierUnavailableError as exc:
                raise MemoryConfigException(f"cannot open the coordination stores: {exc}") from exc
            self.signals = signals.SignalBus(self.stores.signals, clock)
            self.patterns = patterns.PatternStaging(self)
        except BaseException:
            self.close()
            raise

    def _connect(self, **options: Any) -> Any:
        """The connection (tiers.connection.resolve); the async form's sockets wait on asyncio."""
        return resolve(**options)

    # -- what the feature modules share (``stores``: where their bytes live) ----------------------
    def task_queue(self, team_id: str) -> Any:
        """A team's task queue: Lua scripts on Redis; in this process on the embedded engine,
        which no other process shares."""
        return self.stores.tasks(team_id)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def resolve_credentials(self, credentials: AgentCredentials | None) -> AgentCredentials:
        return self.credentials if credentials is None else checked(credentials)

    @property
    def pattern_library(self) -> Any:
        """The long-term pattern library (SQL), opened on first use."""
        with self._library_guard:  # threads deciding at once share one library
            if self._library is None:
                self._library = PatternLibrary.open(
                    url=self._ltm_url, engine=self._ltm_engine, data_dir=self.data_dir, namespace=self.keys.prefix
                )
            return self._library

    # -- working memory -----------------------------------------------------------------------
    def stash(self, key: str, value: Any, credentials: AgentCredentials | None = None, ttl: Any = None) -> bool:
        return working.stash(self, self.resolve_credentials(credentials), key, value, ttl)

    def retrieve(self, key: str, credentials: AgentCredentials | None = None, agent_id: str | None = None) -> Any:
        return working.retrieve(self, self.resolve_credentials(credentials), key, agent_id)

    def store_working_result(
        self, key: str, data: Any, credentials: AgentCredentials | None = None, ttl: Any = None
    ) -> bool:
        """Another name for :meth:`stash` (the short-term memory reference's)."""
        return self.stash(key, data, credentials, ttl)

    def get_working_result(
        self, key: str, credentials: AgentCredentials | None = None, agent_id: str | None = None
    ) -> Any:
        """Another name for :meth:`retrieve` (the short-term memory reference's)."""
        return self.retrieve(key, credentials, agent_id)

    # -- signals ------------------------------------------------------------------------------
    def send_signal(
        self,
        credentials: AgentCredentials | None,
        signal_type: str,
        data: Any = None,
        target_agent: str | None = None,
    ) -> str:
        return self.signals.send(self.resolve_credentials(credentials), signal_type, data, target_agent)

    def receive_signals(
        self, credentials: AgentCredentials | None = None, signal_type: str | None = None, timeout: float = 0.0
    ) -> list[dict[str, Any]]:
        return self.signals.receive(self.resolve_credentials(credentials), signal_type, timeout)

    # -- patterns -----------------------------------------------------------------------------
    def stage_pattern(self, pattern: Any = None, credentials: AgentCredentials | None = None, **fields: Any) -> bool:
        """Stage a StagedPattern, or one built from keyword fields (``agent_id`` defaults to the caller)."""
        return self.patterns.stage(self.resolve_credentials(credentials), pattern, fields)

    def get_staged_patterns(self, credentials: AgentCredentials | None = None) -> list[Any]:
        return self.patterns.staged(self.resolve_credentials(credentials))

    def promote_pattern(self, pattern_id: str, credentials: AgentCredentials | None = None) -> Any:
        return self.patterns.promote(self.resolve_credentials(credentials), pattern_id)

    def reject_pattern(self, pattern_id: str, reason: str, credentials: AgentCredentials | None = None) -> bool:
        return self.patterns.reject(self.resolve_credentials(credentials), pattern_id, reason)

    # -- conflicts ----------------------------------------------------------------------------
    def record_conflict(self, conflict: Any, credentials: AgentCredentials | None = None) -> bool:
        return conflicts.record(self, self.resolve_credentials(credentials), conflict)

    def get_conflict(self, conflict_id: str, credentials: AgentCredentials | None = None) -> Any:
        return conflicts.get(self, self.resolve_credentials(credentials), conflict_id)

    def resolve_conflict(
        self, conflict_id: str, strategy: str = "highest_confidence", credentials: AgentCredentials | None = None
    ) -> Any:
        return conflicts.resolve(self, self.resolve_credentials(credentials), conflict_id, strategy)

    # -- collaboration state ------------------------------------------------------------------
    def persist_collaboration_state(
        self, credentials: AgentCredentials | None, session_id: str, state: Mapping[str, Any]
    ) -> bool:
        return collaboration.persist(self, self.resolve_credentials(credentials), session_id, state)

    def restore_collaboration_state(
        self, credentials: AgentCredentials | None = None, session_id: str | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        return collaboration.restore(self, self.resolve_credentials(credentials), session_id)

    # -- introspection ------------------------------------------------------------------------
    def ping(self) -> bool:
        return pings(self.client)

    @translated("read")
    def get_stats(self) -> dict[str, Any]:
        """``mode`` ("redis" or "embedded"), ``keys`` (in this Redis database), ``memory_used``."""
        embedded = self.mode == "embedded"
        stats: dict[str, Any] = {"mode": self.mode, **server_stats(self.client, embedded), "key_prefix": self.keys.prefix}
        if embedded:
            stats["memory_used"] = "N/A"  # fakeredis does not measure its memory
            stats["data_dir"] = self.data_dir
        return stats

    def get_capabilities(self) -> dict[str, Any]:
        """What this backend can do, as it is connected now."""
        embedded = self.mode == "embedded"
        return {
            "redis": not embedded,
            "embedded": embedded,
            "file_session": embedded,  # durable files in data_dir
            "persistence": True if embedded else saves_to_disk(self.client),
            "multi_process": not embedded,  # the embedded engine belongs to one process
            "signals": True,
            "blocking_signals": True,
            "signals_kept_across_restart": not embedded,  # embedded: real-time, in this process
            "atomic_task_claims": True,
            "pattern_library": True,
            "cluster_safe_keys": True,
        }

    def close(self) -> None:
        """Release the connection; the embedded engine snapshots what it holds."""
        if self._closed:
            return
        self._closed = True
        if self._library is not None:
            self._library.close()
            self._library = None
        if self.stores is not None:
            self.stores.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __enter__(self) -> RedisShortTermMemory:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisShortTermMemory(mode={self.mode!r}, key_prefix={self.keys.prefix!r})"


def get_redis_memory(url: str | None = None, **options: Any) -> RedisShortTermMemory:
    """Auto-detect: ``REDIS_URL``, else localhost:6379, else the embedded engine (never fails for lack of Redis)."""
    return RedisShortTermMemory(url, **options)


def connect_redis_server(
    host: str, port: int = 6379, password: str | None = None, *, db: int = 0, ssl: bool = False, **options: Any
) -> RedisShortTermMemory:
    """An explicit Redis server by host, port and password (``get_railway_redis`` is its other name).

    The client connects on first use (as redis-py does), so an unreachable server surfaces as a
    MemoryStoreException / MemoryRetrievalException from the first operation.
    """
    if {"client", "url", "embedded", "use_mock"} & set(options):
        raise MemoryConfigException("connect_redis_server connects to host:port itself; give neither client, url nor embedded")
    if not isinstance(host, str) or not host or not host.isprintable() or not host.isascii():
        raise MemoryConfigException(f"host must be a host name or address, got {validation.shown(host)}")
    if type(port) is not int or not 1 <= port <= 65535:
        raise MemoryConfigException(f"port must be an int from 1 to 65535, got {validation.shown(port)}")
    if type(db) is not int or db < 0:
        raise MemoryConfigException(f"db must be a non-negative int, got {validation.shown(db)}")
    if password is not None and (not isinstance(password, str) or not password.isprintable()):
        raise MemoryConfigException(f"password must be a printable str or None, got {type(password).__name__}")
    if not isinstance(ssl, bool):
        raise MemoryConfigException(f"ssl must be a bool, got {type(ssl).__name__}")
    memory = RedisShortTermMemory(client=server_client(host, port, password, db, ssl), **options)
    memory._connection.owned = True  # we built the client: close() closes it
    return memory


get_railway_redis = connect_redis_server  # the name the short-term memory reference uses


def check_redis_connection(url: str | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """True when a real Redis answers at ``url``, ``REDIS_URL`` or localhost:6379 (``REDIS_URL=""``: False)."""
    environ = _environment(environ)
    if _option("url", url) is None:
        url = environ.get("REDIS_URL", LOCAL_URL)
    return answers(url) if url else False


def shared(memory: Any) -> RedisShortTermMemory:
    """``memory`` if it is a RedisShortTermMemory: what sessions, coordinators and workspaces share."""
    if not isinstance(memory, RedisShortTermMemory):
        raise InvalidInputError(f"memory must be a RedisShortTermMemory, got {type(memory).__name__}")
    return memory
