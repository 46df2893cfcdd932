"""The embedded engine's script runner (tiers/embedded_client.py): it answers every script as the real
Redis does, compiles each source once, forbids globals, and still sits on the fakeredis internals
it was written against (a fakeredis upgrade that moves them fails here first, by name)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import fakeredis
import pytest
import redis

from support import single_redis
from tiers import embedded_client

# (script, number of keys, arguments); keys are named k1, k2... under the test's prefix
SCRIPTS = [
    ("return 1", 0, []),
    ("return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}", 1, ["a", "b"]),
    ("return 3.99", 0, []),
    ("return true", 0, []),
    ("return false", 0, []),
    ("return nil", 0, []),
    ("return {1, 2, {3, 'x'}, nil, 5}", 0, []),
    ("return 1, 2", 0, []),
    ("return redis.status_reply('FINE')", 0, []),
    ("return redis.error_reply('MYERR bad thing')", 0, []),
    ("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", 1, ["v"]),
    ("redis.call('SET', KEYS[1], 'x'); return redis.call('INCR', KEYS[1])", 1, []),
    ("redis.call('SET', KEYS[1], 'x'); return redis.pcall('INCR', KEYS[1])['err'] ~= nil", 1, []),
    ("return redis.call('HGETALL', KEYS[1])", 1, []),
    ("redis.call('ZADD', KEYS[1], 2, 'b', 1, 'a'); return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')", 1, []),
    ("return redis.call('ZSCORE', KEYS[1], 'nope')", 1, []),
    ("return redis.call('NOSUCHCOMMAND')", 0, []),
    ("return redis.call('GET')", 0, []),
    ("return redis.call('XINFO', 'STREAM', KEYS[1])", 1, []),
    ("redis.call('XADD', KEYS[1], '1-1', 'f', 'v'); return redis.call('XGROUP', 'CREATE', KEYS[1], 'g', '0')", 1, []),
    ("return redis.call('SCRIPT', 'FLUSH')", 0, []),
    ("local t = redis.call('TIME'); return #t", 0, []),
    ("return redis.call('SET', KEYS[1], {})", 1, []),
    ("this is not lua", 0, []),
    ("return nosuchglobal", 0, []),
    ("return #KEYS + #ARGV", 2, ["x"]),
    ("redis.call('XADD', KEYS[1], '1-1', 'f', 'v'); redis.call('XADD', KEYS[1], '1-2', 'f', 'w');"
     "return redis.call('XREAD', 'COUNT', 10, 'STREAMS', KEYS[2], KEYS[1], '0-0', '1-1')", 2, []),
    ("return #(redis.call('XREAD', 'COUNT', 10, 'STREAMS', KEYS[1], '0-0') or {})", 1, []),
]


@pytest.fixture
def engines() -> Iterator[tuple[Any, Any, str]]:
    """A real Redis server (the embedded engine stands in for one server, so one server is what
    it is held to) and the embedded engine's client, and a key prefix (deleted afterwards)."""
    real = single_redis()
    embedded = embedded_client.client(fakeredis.FakeServer())
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield real, embedded, prefix
    keys = list(real.scan_iter(match=f"{prefix}*"))
    if keys:
        real.delete(*keys)
    real.close()
    embedded.close()


def outcome(client: Any, script: str, numkeys: int, args: list[Any], prefix: str) -> Any:
    keys = [f"{prefix}:k{i}" for i in range(1, numkeys + 1)]
    try:
        return client.eval(script, numkeys, *keys, *args)
    except redis.ResponseError as exc:
        return type(exc)


@pytest.mark.parametrize("script, numkeys, args", SCRIPTS)
def test_a_script_answers_as_on_the_real_redis(engines: Any, script: str, numkeys: int, args: list[Any]) -> None:
    real, embedded, prefix = engines
    for _ in range(2):  # compiled on the first call, from the cache on the second
        assert outcome(embedded, script, numkeys, args, prefix) == outcome(real, script, numkeys, args, prefix)


def test_commands_answer_as_on_the_real_redis(engines: Any) -> None:
    def session(client: Any, prefix: str) -> list[Any]:
        key = f"{prefix}:k"
        calls = [
            lambda: client.set(key, 1.5), lambda: client.get(key), lambda: client.incr(key),
            lambda: client.set(key, "é"), lambda: client.getrange(key, 0, -1),
            lambda: client.rpush(f"{key}:l", b"x", 3, "y"), lambda: client.lrange(f"{key}:l", 0, -1),
            lambda: client.client_setname("tiermem-test"), lambda: client.client_getname(),
            lambda: client.execute_command("NOSUCHCOMMAND", 1), lambda: client.hset(key, "f", "v"),
            lambda: client.zadd(f"{key}:z", {"a": 1.25}), lambda: client.zscore(f"{key}:z", "a"),
            lambda: client.pipeline().incr(f"{key}:n").incr(f"{key}:n").execute(),
        ]
        replies = []
        for call in calls:
            try:
                replies.append(call())
            except redis.ResponseError as exc:
                replies.append(type(exc))
        return replies

    real, embedded, prefix = engines
    assert session(embedded, prefix) == session(real, prefix)


def test_an_error_names_its_cause() -> None:
    client = embedded_client.client(fakeredis.FakeServer())
    client.set("k", "x")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        client.eval("return redis.call('INCR', KEYS[1])", 1, "k")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.eval("return redis.call('HGET', KEYS[1], 'f')", 1, "k")
    with pytest.raises(redis.ResponseError, match="user_script:1:"):
        client.eval("return 1 +", 0)
    with pytest.raises(redis.ResponseError, match="nonexistent global variable 'nope'"):
        client.eval("return nope", 0)
    with pytest.raises(redis.ResponseError, match="Number of keys can't be greater than number of args"):
        client.eval("return 1", 2, "a")
    with pytest.raises(redis.exceptions.NoScriptError):
        client.evalsha("0" * 40, 0)


def test_creating_a_global_fails_the_script_where_it_happens() -> None:
    client = embedded_client.client(fakeredis.FakeServer())
    for script in ("leak = 1", "function leak() end", "rawset(_G, 'leak', 1)", "setmetatable(_G, nil); leak = 1"):
        with pytest.raises(redis.ResponseError, match="global variable 'leak'|protected metatable"):
            client.eval(f"{script}; redis.call('SET', KEYS[1], 'written'); return 1", 1, "k")
        assert client.get("k") is None  # nothing after the offending line ran
    with pytest.raises(redis.ResponseError, match="nonexistent global variable 'leak'"):
        client.eval("return leak", 0)  # and no earlier script left one behind
    assert client.eval("local fine = 2; KEYS = {}; return fine", 1, "k") == 2


def test_each_source_is_compiled_once_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    server = fakeredis.FakeServer()
    client = embedded_client.client(server)
    sha = client.script_load("return ARGV[1]")
    assert [client.evalsha(sha, 0, n) for n in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
    runner = embedded_client._runners[server]
    assert list(runner.compiled) == [b"return ARGV[1]"]
    monkeypatch.setattr(embedded_client, "MAX_COMPILED", 4)
    for n in range(10):
        assert client.eval(f"return {n}", 0) == n
    assert len(runner.compiled) <= 4
    assert client.evalsha(sha, 0, "again") == b"again"  # recompiled from the script cache
    client.script_flush()
    with pytest.raises(redis.exceptions.NoScriptError):
        client.evalsha(sha, 0, "x")


def test_thousands_of_arguments_and_the_heap_stays_bounded() -> None:
    server = fakeredis.FakeServer()
    client = embedded_client.client(server)
    args = [str(n) for n in range(20000)]
    assert client.eval("return #ARGV + #KEYS", 2, *args) == 20000
    script = "local t = {} for i = 1, #ARGV do t[i] = ARGV[i] .. 'x' end return #t"
    for _ in range(3 * embedded_client.FULL_GC_EVERY // 100):
        client.eval(script, 0, *args[:2000])
    kilobytes = server._lua_runtime.eval("collectgarbage('count')")
    assert kilobytes < 64 * 1024  # a leak of each call's tables would be ~200 MB here


def test_two_clients_of_one_server_share_compiled_scripts_and_data() -> None:
    server = fakeredis.FakeServer()
    first, second = embedded_client.client(server), embedded_client.client(server)
    sha = first.script_load("return redis.call('INCR', KEYS[1])")
    assert first.evalsha(sha, 1, "n") == 1
    assert second.evalsha(sha, 1, "n") == 2
    pipe = second.pipeline(transaction=True)
    pipe.evalsha(sha, 1, "n")
    pipe.eval("return redis.call('GET', KEYS[1])", 1, "n")
    assert pipe.execute() == [3, b"3"]


def test_the_fakeredis_internals_it_relies_on_are_still_there() -> None:
    """Loud on a fakeredis upgrade: each name below is used by tiers/embedded_client.py."""
    from fakeredis._clients._sync import FakeRedisConnection
    from fakeredis._commands import COMMANDS_WITH_SUB, SUPPORTED_COMMANDS
    from fakeredis._socket import FakeSocket
    from fakeredis.commands_mixins import scripting_mixin

    low, high = (2, 40), (2, 41)  # as pinned in pyproject.toml
    installed = tuple(int(part) for part in version("fakeredis").split(".")[:2])
    assert low <= installed < high, f"tiers/embedded_client.py was tested on fakeredis {low}..{high}, not {installed}"
    # EVAL/EVALSHA are found by method name on the socket, so overriding the methods replaces them
    assert SUPPORTED_COMMANDS["eval"].func_name == "eval"
    assert SUPPORTED_COMMANDS["evalsha"].func_name == "evalsha"
    assert "script" in COMMANDS_WITH_SUB
    for name in ("_get_server_runtime", "_run_command", "_name_to_func", "_convert_lua_result",
                 "_convert_redis_result", "_lua_redis_call", "_lua_redis_pcall"):
        assert callable(getattr(FakeSocket, name, None)), name
    assert list(inspect.signature(FakeSocket._lua_redis_call).parameters) == [
        "self", "lua_runtime", "expected_globals", "op", "args"]
    assert list(inspect.signature(FakeSocket._run_command).parameters) == ["self", "func", "sig", "args", "from_script"]
    assert "FakeSocket(" in inspect.getsource(FakeRedisConnection._connect)
    assert "self._parser.send(data)" in inspect.getsource(FakeSocket.sendall)  # what send_command bypasses
    assert "_killed" in inspect.getsource(FakeSocket.sendall)
    assert list(inspect.signature(FakeSocket._process_command).parameters) == ["self", "fields"]
    assert callable(scripting_mixin._convert_redis_arg) and scripting_mixin.LUA_MODULE.LuaError
    # the runtime's callbacks dispatch to the socket that runs the script
    source = inspect.getsource(scripting_mixin.ScriptingCommandsMixin._get_server_runtime)
    assert "_lua_current_socket" in source and "socket._lua_redis_call(" in source
    # and the subclass is what a client of the embedded engine really runs on
    server = fakeredis.FakeServer()
    client = embedded_client.client(server)
    assert client.eval("return redis.call('PING')", 0) == b"PONG"
    connection = client.connection_pool.get_connection()
    try:
        assert isinstance(connection._sock, embedded_client.CompiledScriptSocket)
    finally:
        client.connection_pool.release(connection)
    assert server in embedded_client._runners


def test_each_thread_keeps_one_connection_and_gives_it_back_when_it_ends():
    import gc
    import threading

    client = embedded_client.client(fakeredis.FakeServer())
    pool = client.connection_pool
    client.set("k", 0)
    client.incr("k")
    taken = len(pool._in_use_connections)
    assert taken == 1  # the main thread's, kept across calls

    results: list[Any] = []
    wait_started = threading.Event()

    def blocked_reader() -> None:  # blocks on its own connection while other threads write
        wait_started.set()
        results.append(client.blpop(["list"], timeout=10))

    def writer(n: int) -> None:
        for _ in range(100):
            client.incr("k")
        if n == 0:
            wait_started.wait(5)
            client.rpush("list", "woken")

    threads = [threading.Thread(target=blocked_reader)] + [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == [(b"list", b"woken")] and client.get("k") == b"401"
    del threads, thread
    gc.collect()
    assert len(pool._in_use_connections) == taken  # the ended threads' connections went back
    client.close()
    assert client.incr("k") == 402  # a closed client reconnects as redis-py's does
