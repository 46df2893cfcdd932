"""The team layer on asyncio: every call the sync layer's own code, as AsyncAgentMemoryAPI runs the engine.

:class:`AsyncRedisShortTermMemory` owns a :class:`RedisShortTermMemory` whose Redis sockets wait
on the event loop (tiers/async_bridge.py); :class:`AsyncAgentWorkspace`,
:class:`AsyncAgentCoordinator` and :class:`AsyncTeamSession` own the sync object of their name
built on that memory. Each method runs the sync method of the same name in a greenlet
(tiers/async_bridge.run_call), one call at a time per memory (one asyncio.Lock shared by the
memory and everything built on it): the coordination stores' locks are thread locks, and two
calls interleaved on one thread would wait on each other for ever. Results and errors are the
sync layer's.

Waiting for signals (``receive_signals`` with a timeout) does not hold that lock, and never
blocks the event loop: it is a series of receives that do not wait (timeout 0, each the sync
call), with a pause on the event loop between them (at most ``POLL_SECONDS``, cut short when a
signal is sent through the same memory). So a coroutine sending on the same memory is not kept
waiting, and on the embedded engine no thread condition is waited on. The signals given, their
order and the errors are the sync call's; the call returns as soon as a receive finds some, or
with ``[]`` once the timeout has passed. Nothing else in the team layer waits (a claim is one
atomic call that returns None when there is nothing to claim).

The pattern library's SQL (``promote_pattern``, ``find_patterns``) runs in the memory's own
thread (tiers.ltm_schema.guarded), off the event loop, as the engine's long-term store's does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

from memory.team.access import AccessTier, AgentCredentials
from memory.team.coordinator import AgentCoordinator
from memory.team.sessions import TeamSession
from memory.team.store import RedisShortTermMemory
from memory.team.ttl import seconds
from memory.team.workspace import AgentWorkspace
from tiers.async_bridge import Caller, GreenConnection, green_client, run_call
from tiers.connection import resolve
from tiers.errors import InvalidInputError, MemoryAPIException

POLL_SECONDS = 0.02  # the longest pause between two receives of a waiting receive_signals

# The sync classes' methods that the async ones run as they are (each an ``async def`` there).
MEMORY_CALLS = (
    "stash", "retrieve", "store_working_result", "get_working_result", "send_signal", "stage_pattern",
    "get_staged_patterns", "promote_pattern", "reject_pattern", "record_conflict", "get_conflict",
    "resolve_conflict", "persist_collaboration_state", "restore_collaboration_state", "ping", "get_stats",
    "get_capabilities",
)
WORKSPACE_CALLS = (
    "get_capabilities", "stash", "retrieve", "send_signal", "stage_pattern", "get_staged_patterns",
    "promote_pattern", "reject_pattern", "find_patterns", "record_conflict", "get_conflict", "resolve_conflict",
    "persist_collaboration_state", "restore_collaboration_state",
)
COORDINATOR_CALLS = (
    "register_agent", "heartbeat", "get_active_agents", "get_capabilities", "add_task", "claim_task",
    "claim_tasks", "complete_task", "get_result", "requeue_expired", "get_pending_tasks", "aggregate_results",
    "broadcast",
)
SESSION_CALLS = ("add_agent", "share", "get", "get_info", "signal")
SENDS = frozenset({"send_signal", "broadcast", "signal"})  # calls after which waiting receives look again

# What each async class reads (and, for a workspace, sets) on its sync object as it is: no I/O.
MEMORY_ATTRIBUTES = ("mode", "keys", "clock", "credentials", "data_dir")
WORKSPACE_ATTRIBUTES = ("user_id", "credentials", "session_id", "target_level", "access_tier")
WORKSPACE_SETTABLE = ("current_empathy_level", "collaboration_state")
COORDINATOR_ATTRIBUTES = ("team_id", "credentials", "keys", "lease_ms", "active_ms", "retention_ms")
SESSION_ATTRIBUTES = ("session_id", "credentials", "ttl_ms")

# Public methods of the sync classes with no async form of the same name, and why.
NOT_AWAITED = {
    "close": "aclose() (or `async with`) closes",
    "resolve_credentials": "no I/O: a plain method here as there",
    "has_short_term_memory": "no I/O: a plain method here as there",
    "task_queue": "the stores' own object, for the feature modules (not a caller's API)",
    "now_ms": "no I/O: a plain method here as there",
}


class _BridgedMemory(RedisShortTermMemory):
    """The sync team memory on green Redis connections."""

    def _connect(self, **options: Any) -> Any:
        return resolve(**options, connection_class=GreenConnection)


class AsyncRedisShortTermMemory:
    """Shared short-term memory for a team, for asyncio: the methods of :class:`RedisShortTermMemory`, awaited.

    ``async with AsyncRedisShortTermMemory(url, **options) as memory:`` (or ``await memory.open()``,
    then ``await memory.aclose()``); the options are RedisShortTermMemory's, and ``client`` is a
    ``redis.asyncio`` client (its server and credentials, with connections of this memory's own)
    or a fakeredis async client. An instance belongs to the event loop it was opened on.
    """

    def __init__(self, url: str | None = None, **options: Any):
        self._options: dict[str, Any] = {"url": url, **options}
        self._memory: RedisShortTermMemory | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._caller = Caller()
        self._closed = False
        self._bell: asyncio.Future[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def open(self) -> AsyncRedisShortTermMemory:
        """Connect (what RedisShortTermMemory's constructor does); returns self."""
        async with self._lock:
            if self._closed:
                raise MemoryAPIException("this AsyncRedisShortTermMemory is closed")
            if self._memory is None:
                try:
                    self._memory = await run_call(self._caller, self._build)
                except BaseException:
                    self._caller.close()
                    raise
        return self

    def _build(self) -> RedisShortTermMemory:
        options = dict(self._options)
        if options.get("client") is not None:
            self._client = options["client"] = green_client(options["client"])
        try:
            return _BridgedMemory(**options)
        except BaseException:
            self._close_client()
            raise

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close as RedisShortTermMemory.close does."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._memory is not None:
                await run_call(self._caller, self._close_memory, self._memory)

    def _close_memory(self, memory: RedisShortTermMemory) -> None:
        try:
            memory.close()
        finally:
            self._close_client()
            self._caller.close()

    async def __aenter__(self) -> AsyncRedisShortTermMemory:
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def sync(self) -> RedisShortTermMemory:
        """The sync memory this one runs (for building the objects on it; call it only through this one)."""
        if self._memory is None:
            raise MemoryAPIException("this AsyncRedisShortTermMemory is closed" if self._closed else
                                     "open this AsyncRedisShortTermMemory first: `await memory.open()` or `async with`")
        return self._memory

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await run_call(self._caller, fn, *args, **kwargs)

    def _ring(self) -> None:
        """A signal was sent through this memory: waiting receives look again now."""
        bell, self._bell = self._bell, None
        if bell is not None and not bell.done():
            bell.set_result(None)

    async def _nap(self, wait: float) -> None:
        if self._bell is None:
            self._bell = asyncio.get_running_loop().create_future()
        await asyncio.wait((self._bell,), timeout=wait)

    async def _receive(self, receive: Callable[..., list[dict[str, Any]]], credentials: Any,
                       signal_type: str | None, timeout: float) -> list[dict[str, Any]]:
        """``receive(credentials, signal_type, timeout)`` (a sync receive_signals), its waiting outside the lock."""
        try:
            wait = seconds(timeout, "timeout", zero=True)
        except MemoryAPIException:  # refused by the sync call itself, its checks in its order (it waits for nothing)
            return await self._run(receive, credentials, signal_type, timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            got = await self._run(receive, credentials, signal_type, 0.0)
            remaining = deadline - loop.time()
            if got or remaining <= 0:
                return got
            await self._nap(min(POLL_SECONDS, remaining))

    async def receive_signals(self, credentials: AgentCredentials | None = None, signal_type: str | None = None,
                              timeout: float = 0.0) -> list[dict[str, Any]]:
        """As RedisShortTermMemory.receive_signals; a wait lets other calls on this memory run meanwhile."""
        return await self._receive(self.sync().receive_signals, credentials, signal_type, timeout)

    def resolve_credentials(self, credentials: AgentCredentials | None) -> AgentCredentials:
        return self.sync().resolve_credentials(credentials)

    def now_ms(self) -> int:
        return self.sync().now_ms()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._memory is not None else "not opened"
        return f"AsyncRedisShortTermMemory({state})" if self._memory is None else f"Async{self._memory!r}"


def _async_memory(memory: Any) -> AsyncRedisShortTermMemory:
    if not isinstance(memory, AsyncRedisShortTermMemory):
        raise InvalidInputError(f"memory must be an AsyncRedisShortTermMemory, got {type(memory).__name__}")
    return memory


class AsyncAgentWorkspace:
    """One agent's view of the team's memory, for asyncio: the methods of :class:`AgentWorkspace`, awaited.

    Built on an opened AsyncRedisShortTermMemory (which the caller closes); the arguments are
    AgentWorkspace's. ``current_empathy_level`` and ``collaboration_state`` are read and set as there.
    """

    short_term_memory: AsyncRedisShortTermMemory
    _sync: AgentWorkspace

    def __init__(self, user_id: str, short_term_memory: AsyncRedisShortTermMemory,
                 access_tier: AccessTier = AccessTier.CONTRIBUTOR, target_level: int = 3,
                 session_id: str | None = None):
        memory = _async_memory(short_term_memory)
        object.__setattr__(self, "short_term_memory", memory)
        object.__setattr__(self, "_sync", AgentWorkspace(user_id, memory.sync(), access_tier, target_level, session_id))

    def has_short_term_memory(self) -> bool:
        return self._sync.has_short_term_memory()

    async def receive_signals(self, signal_type: str | None = None, timeout: float = 0.0) -> list[dict[str, Any]]:
        """As AgentWorkspace.receive_signals; a wait lets other calls on the memory run meanwhile."""
        memory = self.short_term_memory
        return await memory._receive(memory.sync().receive_signals, self._sync.credentials, signal_type, timeout)

    async def aclose(self) -> None:
        """Nothing to release: the workspace never owns its memory (the caller closes it)."""

    async def __aenter__(self) -> AsyncAgentWorkspace:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in WORKSPACE_SETTABLE:
            raise AttributeError(f"AsyncAgentWorkspace has no settable attribute {name!r}")
        setattr(self._sync, name, value)

    def __repr__(self) -> str:
        return f"Async{self._sync!r}"


class AsyncAgentCoordinator:
    """A team's task queue, for asyncio: the methods of :class:`AgentCoordinator`, awaited.

    Built on an opened AsyncRedisShortTermMemory; the arguments are AgentCoordinator's. A claim
    is the sync one's atomic call: many coroutines (and sync coordinators, other processes)
    claiming at once never get one task twice.
    """

    def __init__(self, memory: AsyncRedisShortTermMemory, team_id: str, **options: Any):
        self.memory = _async_memory(memory)
        self._sync = AgentCoordinator(self.memory.sync(), team_id, **options)

    def __repr__(self) -> str:
        return f"AsyncAgentCoordinator(team_id={self._sync.team_id!r})"


class AsyncTeamSession:
    """A team session, for asyncio: ``session = await AsyncTeamSession.open(memory, session_id, ...)``
    (the arguments are TeamSession's: building one creates or joins the session), then its methods, awaited."""

    def __init__(self, memory: AsyncRedisShortTermMemory, session: TeamSession):
        self.memory = memory
        self._sync = session

    @classmethod
    async def open(cls, memory: AsyncRedisShortTermMemory, session_id: str, purpose: str = "",
                   credentials: AgentCredentials | None = None, ttl: float | None = None) -> AsyncTeamSession:
        memory = _async_memory(memory)
        return cls(memory, await memory._run(TeamSession, memory.sync(), session_id, purpose, credentials, ttl))

    def __repr__(self) -> str:
        return f"AsyncTeamSession(session_id={self._sync.session_id!r})"


def _memory_of(instance: Any) -> AsyncRedisShortTermMemory:
    return instance if isinstance(instance, AsyncRedisShortTermMemory) else instance.__dict__.get(
        "short_term_memory", instance.__dict__.get("memory"))


def _sync_of(instance: Any) -> Any:
    return instance.sync() if isinstance(instance, AsyncRedisShortTermMemory) else instance.__dict__["_sync"]


def _bridged(cls: type, sync_cls: type, name: str) -> Callable[..., Any]:
    method = getattr(sync_cls, name)
    rings = name in SENDS

    @functools.wraps(method)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        memory = _memory_of(self)
        result = await memory._run(method, _sync_of(self), *args, **kwargs)
        if rings:
            memory._ring()
        return result

    call.__qualname__ = f"{cls.__name__}.{name}"
    return call


def _attribute(name: str, settable: bool) -> property:
    def get(self: Any) -> Any:
        return getattr(_sync_of(self), name)

    def put(self: Any, value: Any) -> None:
        setattr(_sync_of(self), name, value)

    return property(get, put if settable else None, doc=f"As the sync object's {name}.")


_FORMS: tuple[tuple[type, type, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (AsyncRedisShortTermMemory, RedisShortTermMemory, MEMORY_CALLS, MEMORY_ATTRIBUTES, ()),
    (AsyncAgentWorkspace, AgentWorkspace, WORKSPACE_CALLS, WORKSPACE_ATTRIBUTES, WORKSPACE_SETTABLE),
    (AsyncAgentCoordinator, AgentCoordinator, COORDINATOR_CALLS, COORDINATOR_ATTRIBUTES, ()),
    (AsyncTeamSession, TeamSession, SESSION_CALLS, SESSION_ATTRIBUTES, ()),
)
for _cls, _sync_cls, _calls, _attributes, _settable in _FORMS:
    for _name in _calls:
        setattr(_cls, _name, _bridged(_cls, _sync_cls, _name))
    for _name in _attributes + _settable:
        setattr(_cls, _name, _attribute(_name, _name in _settable))


def sync_methods(sync_cls: type) -> set[str]:
    """The public methods of a sync team class (what the parity test holds the async forms to)."""
    return {name for name, value in vars(sync_cls).items() if not name.startswith("_") and callable(value)}


MAPPING: Mapping[type, type] = {form[1]: form[0] for form in _FORMS}  # sync class -> its async form
