"""redis-py's sync clients with sockets that wait on asyncio: the engine's one implementation,
run by the async API (memory/async_api.py) in greenlets, as SQLAlchemy's asyncio extension runs
its sync core (:func:`run_call` is its ``greenlet_spawn``, with greenlets kept between calls; the
waits are SQLAlchemy's ``await_``, so its async drivers wait the same way).

The engine is written against redis-py's sync client, and below it its own wire
(tiers/transport.py: packed commands on kept connections, and its account of what a broken
exchange did: NotSent, ReplyLost). :class:`GreenConnection` changes only the socket under all of
that: a redis-py ``Connection`` whose socket is an asyncio transport. Sending writes to the
transport; waiting for a reply suspends the calling greenlet (``await_``), so the event loop runs
other tasks until the reply is there. redis-py's parser and pipelines, transport's exchange and
error accounting, the scripts' retry forms: the code the sync API runs, unchanged, so retry
safety (DESIGN.md, invariant 11) holds as it is. A Redis Cluster client takes the connection
class as well (every node's connections are green).

The rules of a green client: it is used inside :func:`run_call` on the event loop that opened its
connections, and one call at a time per caller (the async API's lock). Outside one it refuses to
connect (a RuntimeError: a bug, not a Redis failure).

Cancellation: a call cancelled while it waits (a reply, a connection, a pause) goes on to its end,
and :func:`run_call` raises the CancelledError when it returns, its result dropped. So a call is
never cut between two round trips of the engine's: it ran whole or, cancelled before it began, not
at all.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import redis

try:  # SQLAlchemy 2.1 names it await_; 2.0 await_only
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0
    from sqlalchemy.util import await_only as await_

from tiers.errors import MemoryConfigException

T = TypeVar("T")
PLAIN_SCHEMES = ("redis", "redis+cluster")  # what a green client can speak: plain TCP


class Caller:
    """One async engine as the calls it runs see it (one at a time): its name in the once-scripts'
    request slots (tiers/scripts.py), and the thread where its calls' blocking work runs
    (:func:`offload`), one for the engine, so that work stays on one warm thread. ``close`` ends it."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        self.name = f"a{next(self._numbers)}"
        self._thread: ThreadPoolExecutor | None = None

    def thread(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tiermem-async-{self.name}")
        return self._thread

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None


class _Call:
    """One call run by :func:`run_call`: its caller, and whether it was cancelled on the way."""

    __slots__ = ("caller", "cancelled")

    def __init__(self, caller: Caller):
        self.caller = caller
        self.cancelled = False


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("tiermem_green_call", default=None)


def caller_name() -> str:
    """Who is calling, as a once-script's request slot names it (tiers/scripts.py): the async
    engine running the current call, else the thread."""
    call = _CALL.get()
    return call.caller.name if call is not None else str(threading.get_ident())


async def run_call(caller: Caller, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run the sync ``fn`` in a greenlet on this event loop: each wait on Redis (or SQL, or a
    pause) suspends it. A cancellation meanwhile is raised once it has returned.

    What SQLAlchemy's ``greenlet_spawn`` does, with greenlets kept for the next call (a new
    greenlet's first switch away costs more than the rest of a short call's overhead): the
    greenlet runs ``fn`` and ``await_`` inside it hands this coroutine each awaitable to wait for."""
    call = _Call(caller)
    token = _CALL.set(call)
    idle = _idle_workers()
    worker = idle.pop() if idle else _worker_class()(_serve)
    worker.parent = greenlet_module().getcurrent()
    worker.gr_context = worker.parent.gr_context  # the caller's context variables, as greenlet_spawn shares them
    try:
        out = worker.switch(fn, args, kwargs)
        while not isinstance(out, _Done):
            try:
                value = await out
            except BaseException:  # into the greenlet, where the awaiting code handles it
                out = worker.throw(*sys.exc_info())
            else:
                out = worker.switch(value)
    finally:
        _CALL.reset(token)
    idle.append(worker)
    if call.cancelled:
        raise asyncio.CancelledError()
    if isinstance(out.value, BaseException):
        raise out.value
    return cast(T, out.value)


class _Done:
    """What a worker greenlet hands back when its call returned (``value``) or raised (the exception)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _serve(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A worker greenlet's life: run a call, hand back its outcome, wait for the next."""
    current = greenlet_module().getcurrent()
    while True:
        try:
            done = _Done(fn(*args, **kwargs))
        except BaseException as exc:
            if isinstance(exc, greenlet_module().GreenletExit):
                raise
            done = _Done(exc)
        del fn, args, kwargs
        fn, args, kwargs = current.parent.switch(done)


def greenlet_module() -> Any:
    import greenlet

    return greenlet


_workers = threading.local()  # idle worker greenlets of this thread (a greenlet lives in one thread)


def _idle_workers() -> list[Any]:
    idle = getattr(_workers, "idle", None)
    if idle is None:
        idle = _workers.idle = []
    return idle


@functools.cache
def _worker_class() -> type:
    """A greenlet that SQLAlchemy's ``await_`` accepts as its own (the attribute it checks)."""

    class Worker(greenlet_module().greenlet):  # type: ignore[misc]
        __sqlalchemy_greenlet_provider__ = True

    return Worker


def in_call() -> bool:
    """Whether the code runs inside :func:`run_call` (in its greenlet)."""
    from sqlalchemy.util.concurrency import in_greenlet

    return _CALL.get() is not None and in_greenlet()


def _defer(exc: BaseException) -> None:
    """A cancellation reached a wait: note it for run_call (or raise it when no call defers it)."""
    call = _CALL.get()
    if call is None:
        raise exc
    call.cancelled = True


def _complete(awaitable: Awaitable[T]) -> T:
    """``await_`` an awaitable to its end, cancellations deferred."""
    task = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await_(asyncio.shield(task))
        except asyncio.CancelledError as exc:
            if task.cancelled():
                raise
            try:
                _defer(exc)
            except asyncio.CancelledError:
                task.cancel()
                raise


def pause(seconds: float) -> None:
    """``time.sleep``, or inside a call the same wait on the event loop."""
    if in_call():
        _complete(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


def offload(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; inside a call, in its caller's thread, so that work that blocks (SQL, the
    text model) does not hold the event loop."""
    call = _CALL.get()
    if call is None or not in_call():
        return fn(*args)
    return _complete(asyncio.get_running_loop().run_in_executor(call.caller.thread(), fn, *args))


# -- the socket ------------------------------------------------------------------------------------
class _Stream(asyncio.Protocol):
    """Bytes received, and the one waiter of the green socket over this transport."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None  # why the connection ended (EOF: a reset)
        self.paused = False  # the transport's write buffer is full
        self.expired = False  # the wait in progress ran out of time

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.wake()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionResetError("Redis closed the connection")
        self.wake()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.wake()

    def expire(self) -> None:
        self.expired = True
        self.wake()


READ_SIZE = 1 << 16  # bytes read ahead of the transport at once


class GreenSocket:
    """What redis-py's connection and parser use of a socket, over an asyncio transport.

    A reply that is there already (Redis on this machine often answers within the send) is read
    at once, from the socket under the transport (non-blocking: the transport's own read then
    finds nothing), sparing the event loop a turn; only a reply still on its way is waited for.
    The socket timeout is kept by one timer per socket, re-armed when it fires, not one per wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, stream: _Stream,
                 timeout: float | None, raw: socket.socket):
        self._loop, self._transport, self._stream, self._timeout = loop, transport, stream, timeout
        self._raw = raw
        self._waiting = False
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def sendall(self, data: bytes | memoryview) -> None:
        stream = self._stream
        if stream.lost is not None:
            raise BrokenPipeError(f"the connection to Redis is closed: {stream.lost}")
        self._transport.write(data)
        if stream.paused:  # the transport holds as much as it should: wait until it sent some
            self._wait(lambda: not stream.paused)
            if stream.lost is not None:
                raise BrokenPipeError(f"the connection to Redis broke: {stream.lost}")
            if stream.paused:
                raise TimeoutError("timed out writing to Redis")

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        data = self._take(nbytes or len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if flags & socket.MSG_PEEK:  # redis-py asks whether a readable socket was closed
            if self._stream.buffer or self._stream.lost is not None:
                return bytes(self._stream.buffer[:size])
            return self._raw.recv(size, socket.MSG_PEEK)  # b"" at the end; BlockingIOError: open, nothing there
        return bytes(self._take(size))

    def _take(self, size: int) -> bytearray:
        stream = self._stream
        if not stream.buffer and stream.lost is None:
            try:
                stream.buffer += self._raw.recv(READ_SIZE)  # b"" at the end of the stream: the transport sees it too
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                pass  # a broken connection: the transport reports it (connection_lost)
        if not stream.buffer:
            if self._timeout == 0:
                raise BlockingIOError(11, "no reply yet")
            self._wait(lambda: bool(stream.buffer))
            if not stream.buffer:
                if stream.expired:
                    raise TimeoutError("timed out reading from Redis")
                if isinstance(stream.lost, ConnectionResetError):
                    return bytearray()  # end of stream: the parser reports the closed connection
                raise ConnectionResetError(f"the connection to Redis broke: {stream.lost}")
        data = stream.buffer[:size]
        del stream.buffer[:size]
        return data

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Suspend the calling greenlet until ``ready()``, the connection ends or the timeout passes."""
        stream, loop = self._stream, self._loop
        stream.expired = False
        if self._timeout:
            self._deadline = loop.time() + self._timeout
            if self._watchdog is None:
                self._watchdog = loop.call_at(self._deadline, self._watch)
        self._waiting = True
        try:
            while not ready() and stream.lost is None and not stream.expired:
                waiter = stream.waiter = loop.create_future()
                try:
                    await_(waiter)
                except asyncio.CancelledError as exc:
                    if not waiter.done():
                        raise
                    _defer(exc)  # the reply is on its way: wait for it all the same
        finally:
            stream.waiter = None
            self._waiting = False

    def _watch(self) -> None:
        """The socket's timer: expire the wait in progress past its deadline, else sleep until it."""
        self._watchdog = None
        if not self._waiting or self._transport.is_closing():
            return
        if self._loop.time() >= self._deadline:
            self._stream.expire()
        else:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)

    def pending(self) -> int:
        """Bytes received and not yet read (1 once the connection ended: a read would see it)."""
        return len(self._stream.buffer) or int(self._stream.lost is not None)

    def fileno(self) -> int:
        return self._raw.fileno()

    def getsockname(self) -> Any:
        return self._transport.get_extra_info("sockname")

    def shutdown(self, how: int) -> None:
        pass  # close() ends the transport

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        try:
            self._transport.close()
        except RuntimeError:  # the event loop is closed: its transports went with it
            pass


class GreenConnection(redis.connection.Connection):
    """A redis-py TCP connection whose socket is a :class:`GreenSocket`."""

    green = True

    def _connect(self) -> Any:
        if not in_call():
            raise RuntimeError("a green Redis connection is used by the async API only, inside its calls")
        loop = asyncio.get_running_loop()
        connecting = self._open(loop)
        if self.socket_connect_timeout:
            connecting = asyncio.wait_for(connecting, self.socket_connect_timeout)
        raw, transport, stream = _complete(connecting)
        return GreenSocket(loop, transport, stream, self.socket_timeout, raw)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[socket.socket, asyncio.Transport, _Stream]:
        """A connected TCP socket of this connection's options, and the transport over it."""
        error: OSError = OSError(f"no address for {self.host}:{self.port}")
        for family, kind, proto, _, address in await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
            raw = socket.socket(family, kind, proto)
            try:
                raw.setblocking(False)
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.socket_keepalive:
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    for option, value in self.socket_keepalive_options.items():
                        raw.setsockopt(socket.IPPROTO_TCP, option, value)
                await loop.sock_connect(raw, address)
                transport, stream = await loop.create_connection(_Stream, sock=raw)
                return raw, transport, stream
            except BaseException as exc:
                raw.close()
                if not isinstance(exc, OSError):
                    raise
                error = exc
        raise error


def is_green(client: Any) -> bool:
    """Whether ``client``'s connections are green (a single server's or a cluster's)."""
    from tiers.cluster import is_cluster

    if is_cluster(client):
        return getattr(client.get_connection_kwargs().get("connection_class"), "green", False)
    return getattr(getattr(client, "connection_pool", None), "connection_class", None) is GreenConnection


def check_url(url: str) -> None:
    """Refuse what a green client cannot speak (TLS, unix sockets) before connecting."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in PLAIN_SCHEMES:
        raise MemoryConfigException(f"the async API reaches Redis over plain TCP ({' or '.join(PLAIN_SCHEMES)}://); "
                                    f"{scheme}:// is not supported by it: use AgentMemoryAPI")


# The connection settings of a redis.asyncio client that mean the same on a green one.
_SETTINGS = ("host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
             "socket_keepalive", "socket_keepalive_options", "client_name", "encoding", "encoding_errors",
             "decode_responses", "protocol", "health_check_interval")


def green_client(client: Any) -> Any:
    """The sync client the async engine uses for a client the caller passed in: for a
    ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster`` a green one of the same
    server (or cluster) and credentials, with connections of its own; for a fakeredis async
    client the embedded engine's client of the same in-process server (nothing there waits)."""
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    if type(client).__module__.startswith("fakeredis"):
        from tiers import embedded_client

        server = client.connection_pool.connection_kwargs.get("server")
        if server is None:
            raise MemoryConfigException("a fakeredis async client passed to the async API must name its FakeServer")
        return embedded_client.client(server)
    if isinstance(client, AsyncCluster):
        from tiers import cluster

        settings = client.connection_kwargs
        if settings.get("connection_class", redis.asyncio.connection.Connection) is not redis.asyncio.connection.Connection:
            raise MemoryConfigException("the async API reaches a Redis Cluster over plain TCP: this client uses TLS")
        known = client.get_nodes() or list(client.nodes_manager.startup_nodes.values())  # before its first command
        nodes = [(str(node.host), int(node.port)) for node in known]
        return cluster.connect(nodes, username=settings.get("username"), password=settings.get("password"),
                               socket_timeout=settings.get("socket_timeout"),
                               connect_timeout=settings.get("socket_connect_timeout") or 2.0,
                               connection_class=GreenConnection)
    if isinstance(client, AsyncRedis):
        pool = client.connection_pool
        if pool.connection_class is not redis.asyncio.connection.Connection:
            raise MemoryConfigException(f"the async API reaches Redis over plain TCP, not through a "
                                        f"{pool.connection_class.__name__}")
        kwargs = {name: value for name, value in pool.connection_kwargs.items() if name in _SETTINGS}
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=GreenConnection, **kwargs))
    raise MemoryConfigException(f"redis_client must be a redis.asyncio client (Redis or RedisCluster) or a fakeredis "
                                f"async client, got {type(client).__name__}: a sync client would hold the event loop")
