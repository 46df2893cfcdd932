"""Helpers of the coordination-layer tests (tests/test_team_*.py): what a key prefix holds, memories
on the real Redis for worker processes, and forked workers. Their fixtures (``make_memory``,
``memory``, ``team_prefix``, ``redis_prefix``) are in tests/conftest.py."""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Callable
from typing import Any

from memory import RedisShortTermMemory
from support import TEST_REDIS_URL

FORK = multiprocessing.get_context("fork")


def delete_prefix(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


_READERS: dict[bytes, Callable[[Any, Any], Any]] = {
    b"string": lambda client, key: client.get(key),
    b"hash": lambda client, key: client.hgetall(key),
    b"zset": lambda client, key: client.zrange(key, 0, -1, withscores=True),
    b"set": lambda client, key: client.smembers(key),
    b"stream": lambda client, key: client.xrange(key),
}


def stored(memory: RedisShortTermMemory) -> dict[Any, Any]:
    """Everything the memory's key prefix holds, to compare before and after a refused call: each
    Redis key with its value and, on the embedded engine, the task queues, staged patterns and
    signals (with their readers' cursors) it keeps in the process."""
    client = memory.client
    found: dict[Any, Any] = {}
    for key in client.scan_iter(match=f"{memory.keys.root}*", count=1000):
        found[key] = _READERS[client.type(key)](client, key)
    server = memory._connection.embedded_server
    for name, state in list(server._local.items()) if server is not None else ():
        if not (isinstance(name, tuple) and name[1].startswith(memory.keys.root)):
            continue
        if name[0] == "signal-board":
            streams = {("*", kind): stream for kind, stream in state.broadcasts.items()}
            streams.update({(to, kind): stream for to, inbox in state.inboxes.items() for kind, stream in inbox.items()})
            found[name] = {where: (list(stream.entries), dict(stream.cursors)) for where, stream in streams.items()}
        else:  # a team's task queue or the staged patterns: plain fields beside a lock
            found[name] = {field: copy.deepcopy(value) for field, value in vars(state).items() if field != "lock"}
    return found


def redis_memory(prefix: str, data_dir: str, **options: Any) -> RedisShortTermMemory:
    return RedisShortTermMemory(TEST_REDIS_URL, key_prefix=prefix, data_dir=data_dir, **options)


def run_processes(target: Callable[..., Any], args_list: list[tuple[Any, ...]], timeout: float = 60.0) -> list[Any]:
    """Run ``target(*args, queue)`` in one forked process per args tuple; return what each put on the queue."""
    queue = FORK.Queue()
    processes = [FORK.Process(target=target, args=(*args, queue)) for args in args_list]
    for process in processes:
        process.start()
    results = [queue.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout)
        assert process.exitcode == 0, f"worker exited with {process.exitcode}"
    return results
