"""The Lua scripts: loaded once per connection, called by SHA, and each safe to send again.

Calls go through EVALSHA directly, not redis-py's ``Script`` objects: those make every pipeline
ask ``SCRIPT EXISTS`` first, an extra round trip per query. When Redis answers NOSCRIPT (it was
restarted or flushed; the script did not run) the scripts are loaded again and the call is sent
again.

A call whose reply is lost (the connection broke after it went out) may or may not have run.
Every script says what sending it again means (:class:`Spec`):

- idempotent by construction (reads; upserts keyed by memory id; moves and deletes of named ids;
  compare-and-set writes): sent again as it is, or in its retry form (``retry_flag``: the put of a
  store skips the records it finds already stored);
- ``once``: the call carries a request id and the script records its reply in the caller's
  request slot (once.lua), so the call sent again returns the first call's answer and has taken
  effect exactly once.

A call sent again whose reply is lost again raises :class:`transport.ReplyLost`: the tier boundary
reports it as an outcome that is unknown. On the embedded engine (in this process) no reply is
ever lost, so no script carries the request slot there.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from tiers.async_bridge import caller_name
from tiers.keys import CHANGE_LOG_IDS
from tiers.transport import NotSent, ReplyLost, exchange

LIB_SETTINGS = {"CHANGE_LOG_IDS": CHANGE_LOG_IDS}  # the {{NAME}} placeholders of lib.lua and their defaults


@dataclass(frozen=True)
class Spec:
    """How a script may be sent again after a lost reply (see the module docstring)."""

    once: bool = False  # keeps its reply under a request id
    retry_flag: int | None = None  # ARGV position (0-based) set to "1" when the call is sent again
    read: bool = False  # reads memories (and at most counts reads): never waits for replicas


# The engine's scripts (tiers/lua/<name>.lua, each after lib.lua).
SPECS = {
    "put": Spec(retry_flag=4), "delete": Spec(), "forget": Spec(), "move": Spec(), "range": Spec(read=True),
    "get": Spec(read=True),
    "focus": Spec(once=True, read=True), "touch": Spec(once=True), "set_importance": Spec(), "release": Spec(),
    "renew": Spec(), "tier_stats": Spec(read=True), "victims": Spec(read=True), "set_vectors": Spec(),
    "note": Spec(), "changes": Spec(read=True), "fetch": Spec(read=True), "range_redis": Spec(read=True), "promotion": Spec(),
    "ltm_stamp": Spec(), "drain_reads": Spec(once=True), "bind": Spec(), "retention": Spec(),
}


def lua_source(name: str) -> str:
    """The text of tiers/lua/<name>.lua (``name`` may name a subfolder: "team/claim")."""
    return (resources.files("tiers") / "lua" / f"{name}.lua").read_text()


ONCE_TEMPLATE = lua_source("once")


def once_source(source: str) -> str:
    """``source`` wrapped so that a call takes effect once (once.lua)."""
    return ONCE_TEMPLATE.replace("-- the call --", source)


def guards_replies(client: Any) -> bool:
    """Whether calls on ``client`` can lose a reply: a client of a Redis server, not an
    in-process engine (the embedded engine's client or any fakeredis one)."""
    return not getattr(client, "lean_commands", False) and not type(client).__module__.startswith("fakeredis")


class RequestSlots:
    """Request slots of this process: one key per caller and hash tag, beside the call's keys. A
    caller is a thread, or an async engine (tiers/async_bridge.py: it runs one call at a time, on
    one thread with others). A slot is only ever used by one caller of one process, so a request
    id needs only to differ from that slot's earlier ones: a counter of the process does (no
    random bytes per call)."""

    def __init__(self) -> None:
        self._token, self._pid = secrets.token_hex(6), os.getpid()
        self._requests = itertools.count(1)

    def form(self, keys: Sequence[Any], args: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """The call's keys and arguments with this thread's slot and a new request id added."""
        if self._pid != os.getpid():  # a forked child is another caller
            self._token, self._pid = secrets.token_hex(6), os.getpid()
        first = keys[0] if isinstance(keys[0], str) else keys[0].decode()
        tag_end = first.find("}")
        if tag_end < 0 or "{" not in first[:tag_end]:
            raise ValueError(f"a once-script's first key must carry a hash tag, got {first!r}")
        slot = f"{first[: tag_end + 1]}:once:{self._token}:{caller_name()}"
        return [*keys, slot], [*args, next(self._requests)]


SLOTS = RequestSlots()


class Scripts:
    def __init__(self, client: Any, settings: dict[str, Any] | None = None, wait_replicas: int = 0):
        """``settings`` fill the ``{{NAME}}`` placeholders of lib.lua (limits fixed per engine);
        with ``wait_replicas``, a write (a call not marked ``read``, or a stream) is answered once that many replicas hold it
        (transport.exchange's ``wait``; not on the embedded engine, which has no replicas)."""
        self.client = client
        self.guarded = guards_replies(client)
        self.wait = wait_replicas if self.guarded else 0
        library = lua_source("lib")
        for name, value in {**LIB_SETTINGS, **(settings or {})}.items():
            library = library.replace("{{" + name + "}}", str(int(value)))
        self.sources = {}
        for name, spec in SPECS.items():
            source = library + "\n" + lua_source(name)
            self.sources[name] = once_source(source) if spec.once and self.guarded else source
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in self.sources.items()}
        self._loaded = False
        self.on_reload: Callable[[], None] = lambda: None  # Redis lost the scripts: it restarted or was flushed

    def load(self) -> None:
        for src in self.sources.values():
            self.client.script_load(src)
        self._loaded = True

    def _reload(self) -> None:
        self.load()
        self.on_reload()

    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if not self._loaded:
            self.load()
        spec = SPECS[name]
        if spec.once and self.guarded:
            keys, args = SLOTS.form(keys, args)
        if not self.guarded:
            try:
                return self.client.evalsha(self.shas[name], len(keys), *keys, *args)
            except NoScriptError:
                self._reload()
                return self.client.evalsha(self.shas[name], len(keys), *keys, *args)
        reply = self._send_one(name, keys, args)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def _send_one(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One call (the common case of _send, without its bookkeeping): sent once more after a
        broken connection, in its retry form when it may have run; again after NOSCRIPT."""
        sha = self.shas[name]
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        wait = 0 if SPECS[name].read else self.wait
        try:
            (reply,) = exchange(self.client, (command,), wait)
        except NotSent:
            (reply,) = exchange(self.client, (command,), wait)  # a restarted Redis takes the next connection
        except ReplyLost:
            command = ("EVALSHA", sha, len(keys), *keys, *_retry_form(SPECS[name], args))
            try:
                (reply,) = exchange(self.client, (command,), wait)
            except (NotSent, ReplyLost) as again:
                raise ReplyLost(str(again), [], 1) from again  # the first may have run
        if type(reply) is NoScriptError:  # it did not run
            self._reload()
            (reply,) = exchange(self.client, (command,), wait)
        return reply

    def batch(self) -> Batch:
        """A pipeline of reads to fill (script reads through :meth:`queue`, other commands as on a
        redis-py pipeline) and run through :meth:`execute`."""
        return Batch(self.client)

    def queue(self, batch: Batch, name: str, keys: list[str], args: list[Any]) -> None:
        """Add a script read to a batch."""
        if SPECS[name].once:
            raise ValueError(f"script {name!r} takes effect once: call it, do not pipeline it")
        batch.execute_command("EVALSHA", self.shas[name], len(keys), *keys, *args)

    def execute(self, batch: Batch) -> list[Any]:
        """Run a batch of reads, loading the scripts first if Redis lost them (re-running a read
        is harmless, so a batch may be sent again)."""
        if not self._loaded:
            self.load()
        try:
            return batch.run()
        except NoScriptError:
            self._reload()
            return batch.run()

    def stream(self, calls: Callable[[], Iterable[tuple[str, list[str], list[Any]]]]) -> list[Any]:
        """Run many script calls on one connection, sending each chunk as soon as it is encoded.

        A pipeline encodes every call before sending the first; here Redis runs the first calls
        while Python encodes the next ones. ``calls()`` makes the (name, keys, args) sequence,
        the same each time; it is made again when Redis lost the scripts or the connection broke
        (then in each script's retry form). A failed call's reply is its ResponseError. A
        stream interrupted twice raises :class:`transport.ReplyLost`, saying which calls ran.
        """
        if not self._loaded:
            self.load()
        if not self.guarded:
            return [self._lean_call(name, keys, args) for name, keys, args in calls()]
        return self._send(calls)

    def _lean_call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self.call(name, keys, args)
        except ResponseError as error:
            return error

    # -- sending -------------------------------------------------------------------------------
    def _send(self, calls: Callable[[], Iterable[tuple[str, list[str], list[Any]]]]) -> list[Any]:
        """Send the calls; after a broken connection, once more those that did not answer (in
        their retry form when they may have run); after NOSCRIPT, again once loaded."""

        shas = self.shas

        def commands(retry: bool, start: int = 0) -> Iterator[tuple[Any, ...]]:
            for position, (name, keys, args) in enumerate(calls()):
                if position >= start:
                    sent = _retry_form(SPECS[name], args) if retry else args
                    yield ("EVALSHA", shas[name], len(keys), *keys, *sent)

        try:
            # the first attempt, the common case: no positions to skip, no retry forms
            replies = exchange(self.client, (("EVALSHA", shas[name], len(keys), *keys, *args)
                                             for name, keys, args in calls()), self.wait)
        except NotSent:
            replies = exchange(self.client, commands(False), self.wait)  # a restarted Redis takes the next connection
        except ReplyLost as lost:
            done = list(lost.replies)
            in_doubt_until = len(done) + lost.maybe_ran  # calls before this may have run
            try:
                done += exchange(self.client, commands(True, len(done)), self.wait)
            except (NotSent, ReplyLost) as again:
                answered = done + list(getattr(again, "replies", []))
                doubt = max(getattr(again, "maybe_ran", 0), in_doubt_until - len(answered))
                raise ReplyLost(str(again), answered, doubt) from again
            replies = done
        missing = {i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)}
        if missing:  # those did not run
            self._reload()
            rerun = iter(exchange(self.client, (c for i, c in enumerate(commands(False)) if i in missing), self.wait))
            replies = [next(rerun) if i in missing else reply for i, reply in enumerate(replies)]
        return replies


class Batch:
    """The commands of one pipeline, recorded as redis-py pipeline calls, so that the pipeline can
    be sent again (after NOSCRIPT) and made on any client: one server, a cluster (whose pipeline
    groups the commands per primary and refuses the ``evalsha`` method, not the command) or
    the embedded engine."""

    def __init__(self, client: Any):
        self._client = client
        self._calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Batch]:
        def record(*args: Any, **kwargs: Any) -> Batch:
            self._calls.append((name, args, kwargs))
            return self

        return record

    def __len__(self) -> int:
        return len(self._calls)

    def run(self) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for name, args, kwargs in self._calls:
            getattr(pipe, name)(*args, **kwargs)
        return pipe.execute()


def _retry_form(spec: Spec, args: list[Any]) -> list[Any]:
    if spec.retry_flag is None:
        return args
    retried = list(args)
    retried[spec.retry_flag] = "1"
    return retried


class Script:
    """One Lua script called by SHA, loaded again if Redis lost it. Called like redis-py's
    ``Script`` (``keys``, ``args``, and ``client`` for a pipeline, which redis-py's own
    handles), ~20 us cheaper a call on Redis. With ``once`` (a write that must not apply twice),
    each call carries a request id and is sent again after a lost reply (see the module
    docstring); without it the script must be idempotent, and is sent again as it is."""

    def __init__(self, client: Any, source: str, once: bool = False, wait: int = 0):
        """``wait``: replicas that must hold a call's writes before it is answered (see
        transport.exchange; the embedded engine has none, so it never waits)."""
        self.client = client
        self.once = once and guards_replies(client)
        self.wait = wait if guards_replies(client) else 0
        self.source = once_source(source) if self.once else source
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        self._registered: Any = None

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if client is not None and client is not self.client:
            if self.once:
                raise ValueError("a script that takes effect once is called, not pipelined")
            if self._registered is None:
                self._registered = self.client.register_script(self.source)
            return self._registered(keys=keys, args=args, client=client)
        if self.once:
            keys, args = SLOTS.form(keys, args)
        try:
            return evalsha(self.client, self.sha, keys, args, self.wait)
        except NoScriptError:
            self.client.script_load(self.source)
            return evalsha(self.client, self.sha, keys, args, self.wait)


def evalsha(client: Any, sha: str, keys: Sequence[Any], args: Sequence[Any], wait: int = 0) -> Any:
    """One EVALSHA; ResponseError (NoScriptError included) raised. On a redis-py client it is
    packed by hiredis and sent on a kept connection (tiers/transport.py), skipping ~20 us of
    per-command wrapping, and sent once more after a broken connection (the caller's script is
    idempotent or takes effect once); the embedded client's own single commands are leaner
    still (no RESP)."""
    if not guards_replies(client):
        return client.evalsha(sha, len(keys), *keys, *args)
    command = ("EVALSHA", sha, len(keys), *keys, *args)
    try:
        (reply,) = exchange(client, [command], wait)
    except (NotSent, ReplyLost):
        (reply,) = exchange(client, [command], wait)
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def send_writes(client: Any, commands: Sequence[tuple[Any, ...]], wait: int = 0) -> list[Any]:
    """Plain write commands that are harmless to repeat, in order on a kept connection (sent once
    more after a broken connection); with ``wait``, answered once that many replicas hold them.
    A failed command's ResponseError is raised."""
    if not guards_replies(client):
        return [client.execute_command(*command) for command in commands]
    try:
        replies = exchange(client, commands, wait)
    except (NotSent, ReplyLost):
        replies = exchange(client, commands, wait)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def send_packed(client: Any, commands: Callable[[], Iterable[tuple[Any, ...]]]) -> list[Any]:
    """Send plain commands that are harmless to repeat (reads) on a kept connection, once more
    after a broken connection."""
    try:
        return exchange(client, commands())
    except (NotSent, ReplyLost):
        return exchange(client, commands())
