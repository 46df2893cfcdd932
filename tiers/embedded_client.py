"""The embedded engine's client: fakeredis, with scripts compiled once and commands handed over whole.

fakeredis (2.40) runs EVAL/EVALSHA by recompiling the script's source, checking every Lua global
from Python before each inner ``redis.call`` and running a full ``collectgarbage()`` after each
call; and every command goes through RESP twice in-process (redis-py packs it, fakeredis parses
it back). That was about a third of what a coordination call cost on the embedded engine (with the
same scripts: ``add_task`` 0.18 -> 0.12 ms, ``claim_task`` 0.29 -> 0.20 ms, a signal round trip
0.63 -> 0.44 ms). Through the connection class fakeredis lets a client choose, a socket subclass
keeps every command and replaces how a script runs, and the connection hands a command's
arguments to the socket as the parser would have:

- each distinct source is compiled once (chunk name ``user_script``, as Redis names it) and kept
  in a bounded cache per server; one Lua call sets KEYS and ARGV and runs it;
- globals are forbidden the way Redis forbids them: creating one (or reading an undefined one)
  raises at that line (a metatable on ``_G``), so nothing after it runs; no per-call scan of ``_G``;
- Lua's own incremental collector frees each call's tables; a full collection every
  ``FULL_GC_EVERY`` calls keeps the heap's high-water mark bounded all the same;
- a single command skips RESP (pipelines and transactions still send it packed, unchanged);
- a thread keeps its connection instead of checking one out of the pool for every command.

Errors read as fakeredis (and Redis 7) report them. It relies on fakeredis internals named in
``tests/test_embedded_client.py``, which fails loudly if they change; pyproject pins the tested
range.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from typing import Any

import fakeredis
from fakeredis import _msgs as msgs
from fakeredis._clients._sync import FakeRedisConnection
from fakeredis._commands import COMMANDS_WITH_SUB
from fakeredis._helpers import SimpleError
from fakeredis._socket import FakeSocket
from fakeredis.commands_mixins.scripting_mixin import LUA_MODULE, _convert_redis_arg

FULL_GC_EVERY = 1000  # script calls between two full collections
MAX_COMPILED = 1024  # distinct scripts kept compiled per server; the cache starts over beyond it

# Run once per Lua runtime: globals are off limits as in Redis (creating one, even by rawset, or
# reading one that does not exist, raises); KEYS and ARGV exist already, so each call may reassign
# them. Returns the function every call goes through.
_SETUP = """
local raw_set = rawset
rawset = function(t, k, v)
  if t == _G then error("Script attempted to create global variable '" .. tostring(k) .. "'", 2) end
  return raw_set(t, k, v)
end
setmetatable(_G, {
  __newindex = function(_, name)
    error("Script attempted to create global variable '" .. tostring(name) .. "'", 2)
  end,
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __metatable = false,
})
return function(body, keys, argv)
  KEYS, ARGV = keys, argv
  return (body())
end
"""


class _Runner:
    """One server's compiled scripts, run function and call count."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.run = runtime.execute(_SETUP)
        self.compiled: dict[bytes, Any] = {}
        self.calls = 0

    def function(self, script: bytes) -> Any:
        body = self.compiled.get(script)
        if body is None:
            body = self.runtime.compile(script, name=b"@user_script")  # a LuaError if it does not compile
            if len(self.compiled) >= MAX_COMPILED:
                self.compiled.clear()
            self.compiled[script] = body
        return body

    def collect(self) -> None:
        self.calls += 1
        if self.calls % FULL_GC_EVERY == 0:
            self.runtime.execute("collectgarbage()")


_runners: weakref.WeakKeyDictionary[Any, _Runner] = weakref.WeakKeyDictionary()


class CompiledScriptSocket(FakeSocket):
    """A fakeredis socket whose EVAL and EVALSHA run compiled scripts (commands are looked up by name)."""

    def _runner(self) -> _Runner:
        runner = _runners.get(self._server)
        if runner is None:
            runner = _runners[self._server] = _Runner(self._get_server_runtime(self._server))
        return runner

    def eval(self, script: bytes, numkeys: int, *keys_and_args: bytes) -> Any:
        sha1 = hashlib.sha1(script).hexdigest().encode()
        self._server.script_cache[sha1] = script
        return self._run(sha1, script, numkeys, keys_and_args)

    def evalsha(self, sha1: bytes, numkeys: int, *keys_and_args: bytes) -> Any:
        try:
            script = self._server.script_cache[sha1]
        except KeyError:
            raise SimpleError(msgs.NO_MATCHING_SCRIPT_MSG) from None
        return self._run(sha1, script, numkeys, keys_and_args)

    def _run(self, sha1: bytes, script: bytes, numkeys: int, keys_and_args: tuple[bytes, ...]) -> Any:
        if numkeys > len(keys_and_args):
            raise SimpleError(msgs.TOO_MANY_KEYS_MSG)
        if numkeys < 0:
            raise SimpleError(msgs.NEGATIVE_KEYS_MSG)
        runner = self._runner()
        server: Any = self._server
        server._lua_current_socket[0] = self  # the redis.call callbacks dispatch to this socket
        self._script_resp = 2  # every script starts at RESP2, whatever its caller speaks
        caller_fieldsets, self._fieldsets = self._fieldsets, {}
        try:
            table = runner.runtime.table_from  # tables, not varargs: a call may carry thousands of arguments
            result = runner.run(runner.function(script), table(keys_and_args[:numkeys]), table(keys_and_args[numkeys:]))
        except SimpleError:
            raise  # an error a redis.call raised: Redis 7 passes its message through as it is
        except LUA_MODULE.LuaError as exc:
            raise SimpleError(msgs.SCRIPT_ERROR_MSG.format(sha1.decode(), exc)) from None
        finally:
            self._script_resp = None
            self._fieldsets = caller_fieldsets
            runner.collect()
        return self._convert_lua_result(result, nested=False)

    def _lua_redis_call(self, lua_runtime: Any, expected_globals: set[Any], op: bytes, *args: Any) -> Any:
        """``redis.call``: fakeredis's, less the scan of every global before it (the metatable forbids them)."""
        cmd = op.decode("utf-8", "replace").lower()
        if cmd in COMMANDS_WITH_SUB and args:
            cmd += " " + _convert_redis_arg(args[0]).decode("utf-8", "replace").lower()
            args = args[1:]
        func, sig = self._name_to_func(cmd)
        if func is None:
            raise SimpleError(msgs.WRONG_ARGS_MSG7)
        result = self._run_command(func, sig, [_convert_redis_arg(arg) for arg in args], True)
        return self._convert_redis_result(lua_runtime, result)


class CompiledScriptConnection(FakeRedisConnection):
    """A fakeredis connection whose socket is a CompiledScriptSocket."""

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        """The command's fields, encoded and split as redis-py's packer does, straight to the socket."""
        if not self._sock:
            self.connect()
        socket: Any = self._sock
        server: Any = self._server
        if not server.connected or socket._killed:
            raise self._connection_error_class(msgs.CONNECTION_ERROR_MSG)
        name, *rest = args
        fields = name.encode().split() if isinstance(name, str) else bytes(name).split()
        encode = self.encoder.encode
        socket._process_command([*fields, *(encode(arg) for arg in rest)])

    def _connect(self) -> CompiledScriptSocket:
        server: Any = self._server  # set by fakeredis before it connects
        if not server.connected:
            raise self._connection_error_class(msgs.CONNECTION_ERROR_MSG)
        return CompiledScriptSocket(
            server,
            client_class=self._client_class,
            db=self.db,
            lua_modules=self._lua_modules,
            client_info=self._client_info,
        )


class ThreadConnectionClient(fakeredis.FakeRedis):
    """A client whose every thread keeps the connection it first took, for its single commands.

    redis-py checks a connection out of the pool and back in around every command, with retries
    and metrics hooks around that: ~20 us of a ~40 us script call in process, where nothing can be
    retried or measured usefully. A thread's connection goes back to the pool when the thread
    ends; pipelines and transactions use the pool as before.
    """

    lean_commands = True  # single commands here beat tiers.scripts.send_packed's RESP packing

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._threads = threading.local()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        connection = getattr(self._threads, "connection", None)
        if connection is None:
            pool = self.connection_pool
            connection = self._threads.connection = pool.get_connection()
            weakref.finalize(threading.current_thread(), pool.release, connection)
        connection.send_command(*args)
        return self.parse_response(connection, args[0], **options)


def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """A client of ``server`` that runs scripts compiled (RESP2, bytes replies, as tiermem expects)."""
    if server.server_type != "redis" or server.version < (7,):
        raise ValueError("the compiled-script client reports errors as Redis 7 does: it needs a redis server >= 7")
    return ThreadConnectionClient(server=server, connection_class=CompiledScriptConnection)
