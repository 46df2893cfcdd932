"""The fault suite's harness: a proxy that loses replies, a Redis of the test's own, a child engine.

Real services only (STYLE.md habit 13): the proxy forwards every byte to a real Redis and only
withholds replies it was told to lose; ``RedisProcess`` is a real redis-server; the embedded child
is the real embedded engine in another process. The fixtures that build and always clean these up
are in tests/conftest.py (``lossy_proxy``, ``make_redis_process``, ``embedded_child``).

    LossyProxy(upstream_host, upstream_port)   loopback TCP proxy, RESP parsed both ways
        .port, .client(**redis_kwargs)          where clients connect
        .drop_reply(predicate, nth=1, mode="close" | "hold") -> Drop
        .commands(predicate=None)               every command forwarded, in arrival order
        .dropped                                a Drop per reply lost so far
        .connections                            per client connection: commands and replies counted
        .close()
    is_command(name, *args), is_script(source), is_once_script(source), contains(fragment), all_of(*predicates)
                                                predicates on a command (a tuple of bytes) for drop_reply
    RedisProcess(directory, persistent=True)   redis-server on a free loopback port in 7300-7399
        .start(), .kill() (SIGKILL), .restart(keep_data), .stop(), .url(db=0), .client(**kwargs)
    EmbeddedChild(script, args, stderr_path)   ``sys.executable -c script *args``, PYTHONPATH set
        .wait_for(marker, timeout) -> lines, .kill(), .stderr_tail()
    every_query_kind(api, agent, attributes, state) -> {kind: ids}   every query kind, asked widely
    answer_problems(answers, held, expected) -> [problem]           twice named, gone, left out
"""

from __future__ import annotations

import collections
import hashlib
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis
import redis

from tiers.scripts import once_source

REPO = str(Path(__file__).resolve().parents[1])


def worker_port(port: int) -> int:
    """``port`` for the first (or only) pytest process, 1000 more for each further pytest-xdist
    worker: servers that parallel workers start never share a port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return port + 1000 * int(worker.removeprefix("gw") or 0)


PORTS = range(worker_port(7300), worker_port(7400))  # where this suite may start redis-servers (loopback only)
Command = tuple[bytes, ...]
Predicate = Callable[[Command], bool]


# -- RESP framing ----------------------------------------------------------------------------------


def frame_end(buffer: bytes | bytearray, start: int) -> int | None:
    """The offset just past the one complete RESP2/RESP3 value at ``start``, or None while it is
    incomplete. Only framing: the value itself is decoded by hiredis."""
    position, needed = start, 1  # values still to read; an aggregate's header adds its elements
    while needed:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        kind, head = buffer[position : position + 1], buffer[position + 1 : line_end]
        position = line_end + 2
        needed -= 1
        if kind in (b"$", b"=", b"!"):  # bulk string, verbatim string, bulk error
            length = int(head)
            if length >= 0:
                position += length + 2
                if position > len(buffer):
                    return None
        elif kind in (b"*", b"~", b">"):  # array, set, push
            needed += max(0, int(head))
        elif kind == b"%":  # map
            needed += 2 * max(0, int(head))
        elif kind == b"|":  # attribute: a map that precedes the value it describes
            needed += 2 * int(head) + 1
        # + - : _ , # ( : a single line
    return position


def decode(frame: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(frame)
    return reader.gets()


# -- predicates -------------------------------------------------------------------------------------


def is_command(name: str, *args: bytes | str) -> Predicate:
    """The command ``name`` (any case) whose first arguments are ``args``."""
    wanted = [a.encode() if isinstance(a, str) else a for a in args]

    def matches(command: Command) -> bool:
        return (bool(command) and command[0].upper() == name.upper().encode()
                and list(command[1 : 1 + len(wanted)]) == wanted)

    return matches


def script_sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


def is_script(source: str) -> Predicate:
    """An EVALSHA of the Lua script ``source`` (its SHA1, as tiers/scripts.py sends it)."""
    return is_command("EVALSHA", script_sha(source))


def is_once_script(source: str) -> Predicate:
    """An EVALSHA of ``source`` as a script that takes effect once sends it (wrapped by once.lua)."""
    return is_script(once_source(source))


def all_of(*predicates: Predicate) -> Predicate:
    return lambda command: all(predicate(command) for predicate in predicates)


def contains(fragment: bytes | str) -> Predicate:
    """A command one of whose arguments contains ``fragment``."""
    needle = fragment.encode() if isinstance(fragment, str) else fragment
    return lambda command: any(needle in argument for argument in command)


# -- the proxy --------------------------------------------------------------------------------------


@dataclass
class Drop:
    """One armed reply loss: the ``nth`` command matching ``predicate`` from now on loses its reply."""

    predicate: Predicate
    nth: int
    mode: str  # "close": the client's connection is closed; "hold": it stays open and silent
    seen: int = 0
    command: Command | None = None  # what was forwarded to Redis and ran there
    reply: Any = None  # what Redis answered, decoded; the client never got it
    connection: int | None = None
    fired: threading.Event = field(default_factory=threading.Event)


@dataclass
class ConnectionCounts:
    number: int
    commands: int = 0
    replies: int = 0  # replies Redis sent on this connection, forwarded or not
    forwarded: int = 0


class _Link:
    """One client connection and its upstream connection, with a pump thread each way."""

    def __init__(self, proxy: LossyProxy, client: socket.socket, upstream: socket.socket, number: int):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.counts = ConnectionCounts(number)
        self.pending: collections.deque[Drop | None] = collections.deque()  # one entry per command in flight
        self.silent = False
        self.threads = [
            threading.Thread(target=self._commands, name=f"proxy-{number}-commands", daemon=True),
            threading.Thread(target=self._replies, name=f"proxy-{number}-replies", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _commands(self) -> None:
        """Client -> Redis: parse each command (to count it and decide its reply's fate) before
        forwarding the bytes, so a command's entry is queued before its reply can come back."""
        reader = hiredis.Reader()
        try:
            while chunk := self.client.recv(65536):
                reader.feed(chunk)
                while (command := reader.gets()) is not False:
                    command = tuple(command) if isinstance(command, list) else (command,)
                    self.counts.commands += 1
                    self.pending.append(self.proxy._arrived(command, self.counts.number))
                self.upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            self.shut()

    def _replies(self) -> None:
        """Redis -> client: forward each complete reply, or lose the one an armed Drop owns."""
        buffer = bytearray()
        try:
            while chunk := self.upstream.recv(65536):
                buffer += chunk
                start, out = 0, bytearray()
                while (end := frame_end(buffer, start)) is not None:
                    frame = bytes(buffer[start:end])
                    start = end
                    if frame.startswith(b">"):  # a RESP3 push answers no command
                        out += frame
                        continue
                    self.counts.replies += 1
                    drop = self.pending.popleft() if self.pending else None
                    if drop is not None:
                        if out and not self.silent:
                            self.client.sendall(out)
                        out = bytearray()
                        self.proxy._lost(drop, decode(frame))
                        if drop.mode == "close":
                            return  # finally: both sides closed; the client sees a ConnectionError
                        self.silent = True  # "hold": never another byte; the client times out
                        continue
                    if not self.silent:
                        out += frame
                        self.counts.forwarded += 1
                del buffer[:start]
                if out and not self.silent:
                    self.client.sendall(out)
        except OSError:
            pass
        finally:
            self.shut()

    def shut(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class LossyProxy:
    """A loopback TCP proxy in front of a Redis that passes everything through until armed.

    ``drop_reply`` arms it: the ``nth`` command from then on that matches the predicate is
    forwarded and runs in Redis; its reply is read and thrown away. Then, ``mode="close"``, the
    client's connection is closed (the client sees a ConnectionError) or, ``mode="hold"``, it is
    kept open and silent (a client with ``socket_timeout`` times out). Every command is logged
    and counted per connection, so a test can tell how often a call was sent.
    """

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.log: list[tuple[int, Command]] = []  # (connection number, command)
        self.dropped: list[Drop] = []
        self.connections: list[ConnectionCounts] = []
        self._armed: list[Drop] = []
        self._links: list[_Link] = []
        self._guard = threading.Lock()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._accepter.start()

    def client(self, **options: Any) -> redis.Redis:
        """A redis-py client that goes through the proxy (RESP2, as tiermem's own clients)."""
        options.setdefault("protocol", 2)
        options.setdefault("socket_connect_timeout", 2)
        options.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def drop_reply(self, predicate: Predicate, *, nth: int = 1, mode: str = "close") -> Drop:
        if mode not in ("close", "hold") or nth < 1:
            raise ValueError(f"mode must be 'close' or 'hold' and nth >= 1, got {mode!r}, {nth!r}")
        drop = Drop(predicate, nth, mode)
        with self._guard:
            self._armed.append(drop)
        return drop

    def disarm(self) -> None:
        with self._guard:
            self._armed.clear()

    def commands(self, predicate: Predicate | None = None) -> list[Command]:
        with self._guard:
            return [command for _, command in self.log if predicate is None or predicate(command)]

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._accepter.join(5)
        for link in list(self._links):
            link.shut()
        for link in list(self._links):
            for thread in link.threads:
                thread.join(5)

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- called by the links --------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._guard:
                number = len(self._links)
                link = _Link(self, client, upstream, number)
                self._links.append(link)
                self.connections.append(link.counts)

    def _arrived(self, command: Command, connection: int) -> Drop | None:
        with self._guard:
            self.log.append((connection, command))
            for drop in self._armed:
                if drop.predicate(command):
                    drop.seen += 1
                    if drop.seen == drop.nth:
                        self._armed.remove(drop)
                        drop.command, drop.connection = command, connection
                        return drop
        return None

    def _lost(self, drop: Drop, reply: Any) -> None:
        with self._guard:
            drop.reply = reply
            self.dropped.append(drop)
        drop.fired.set()


# -- a Redis of the test's own ----------------------------------------------------------------------


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (with SO_REUSEADDR, as redis-server does, so
    connections of an earlier server in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisProcess:
    """A redis-server on loopback, on a free port in 7300-7399, with its own directory.

    ``persistent=True``: AOF on with ``appendfsync always``, so every write Redis acknowledged is
    on disk before the client hears of it, and a SIGKILL loses none of them. ``persistent=False``:
    no AOF, no RDB, so a restart comes back empty. The port is kept across restarts.
    """

    def __init__(self, directory: Path, persistent: bool = True):
        self.directory = Path(directory)
        self.persistent = persistent
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.directory.parent / f"{self.directory.name}.log"

    def _argv(self) -> list[str]:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
                "--save", "", "--daemonize", "no", "--logfile", str(self.log_path), "--protected-mode", "yes"]
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start on the kept port, or (first start) on a free one; wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        candidates = [self.port] if self.port is not None else random.sample(list(PORTS), len(PORTS))
        for port in candidates:
            if self.port is None and not port_free(port):
                continue
            self.port = port
            self.process = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._answering(timeout):
                return self
            self._reap()
            if len(candidates) == 1:
                break
            self.port = None  # taken meanwhile by someone else: try another
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}; log: {self._log_tail()}")

    def _answering(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, socket_timeout=1,
                            retry=None)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if probe.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.02)
            return False
        finally:
            probe.close()

    def _reap(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-1500:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """A clean stop (SIGTERM): Redis flushes its AOF and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, keep_data: bool) -> RedisProcess:
        """Kill and start again on the same port; ``keep_data=False`` wipes the directory first."""
        self.kill()
        if not keep_data:
            shutil.rmtree(self.directory, ignore_errors=True)
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, **options: Any) -> redis.Redis:
        options.setdefault("protocol", 2)
        options.setdefault("socket_connect_timeout", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)


# -- a child process running the embedded engine ---------------------------------------------------


def child_env() -> dict[str, str]:
    """The test's environment with the repository on PYTHONPATH (for ``sys.executable -c``)."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1"}


class EmbeddedChild:
    """``sys.executable -c script *args`` with stdout read line by line on a thread, so a test
    can wait for a marker with a timeout and SIGKILL the child at that moment."""

    def __init__(self, script: str, args: Sequence[str], stderr_path: Path):
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, env=child_env(), cwd=REPO,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, marker: str, timeout: float = 60.0) -> list[str]:
        """Lines printed up to (not including) the first line equal to ``marker``."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {marker!r} from the child within {timeout} s; stderr: {self.stderr_tail()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the child exited ({self.process.wait(5)}) before {marker!r}; "
                                     f"stderr: {self.stderr_tail()}")
            self.lines.append(line)
            if line == marker:
                return seen
            seen.append(line)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)
        self.process.stdout.close()
        self._stderr.close()

    def stderr_tail(self) -> str:
        self._stderr.flush()
        try:
            return self.stderr_path.read_text()[-2000:]
        except OSError:
            return "(no stderr)"


# -- what the engine fault tests check -------------------------------------------------------------

WHOLE_RANGE = (0, 2**53 - 1)
EVERYWHERE = ((0.0, 0.0), 1e9)  # a place query whose circle holds every position
EVERY = 100_000  # k and count for the ranked kinds: every memory the agent has


def every_query_kind(
    api: Any, agent_id: str, attributes: dict[str, Any], state: dict[str, Any]
) -> dict[str, list[str]]:
    """The ids each query kind answers for ``agent_id``, asked widely enough that each should
    name every memory the agent holds (``attributes`` must match all of them); answers in order,
    duplicates kept. Asked the same way every time, so a second round can be served by caches."""
    from embeddings.state import StateEncoder

    vector = StateEncoder(api.config.search_config.vector_dim).encode(state)
    center, radius = EVERYWHERE

    def ids(answer: Any) -> list[str]:
        return [memory["memory_id"] for memory in answer]

    return {
        "time range": ids(api.retrieve_by_time_range(agent_id, *WHOLE_RANGE)),
        "recent": ids(api.retrieve_recent(agent_id, count=EVERY)),
        "most important": ids(api.retrieve_most_important(agent_id, k=EVERY)),
        "attributes": ids(api.retrieve_by_attributes(agent_id, attributes)),
        "similar states": ids(api.retrieve_similar_states(agent_id, state, k=EVERY)),
        "by embedding": ids(api.search_by_embedding(agent_id, vector, k=EVERY)),
        "location": ids(api.retrieve_by_location(agent_id, center, radius)),
        "nearest": ids(api.retrieve_nearest(agent_id, center, k=EVERY)),
        "combined": ids(api.query(agent_id).between(*WHOLE_RANGE).near(center, radius).similar_to(state).top(EVERY)),
    }


def answer_problems(answers: dict[str, list[str]], held: set[str], expected: set[str]) -> list[str]:
    """What is wrong with ``answers``: an id named twice, an id no tier holds (``held``: the ids
    get_memory finds), an id of ``expected`` left out."""
    problems = []
    for kind, ids in answers.items():
        twice = sorted({i for i in ids if ids.count(i) > 1})
        ghosts = sorted(set(ids) - held)
        missing = sorted(expected - set(ids))
        if twice:
            problems.append(f"{kind}: named {len(twice)} memories twice, e.g. {twice[:3]}")
        if ghosts:
            problems.append(f"{kind}: named {len(ghosts)} memories no tier holds, e.g. {ghosts[:3]}")
        if missing:
            problems.append(f"{kind}: left out {len(missing)} of {len(expected)} memories, e.g. {missing[:3]}")
    return problems
