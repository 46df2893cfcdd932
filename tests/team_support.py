"""Helpers of the coordination-layer tests (tests/test_team_*.py): what a key prefix holds, memories
on the real Redis for worker processes, forked workers, and a Redis Cluster to compare with one
server. Their shared fixtures (``make_memory``, ``memory``, ``team_prefix``, ``redis_prefix``) are
in tests/conftest.py."""

from __future__ import annotations

import copy
import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cluster_support import LocalCluster
from fault_support import worker_port
from memory import RedisShortTermMemory
from support import ON_CLUSTER, TEST_REDIS_URL, unavailable
from tiers import cluster

# a test's own cluster (beside one server): ports 7511-7516, a further xdist worker's 1000 up
OWN_CLUSTER_PORT = worker_port(7511)


@contextmanager
def a_redis_cluster() -> Iterator[str]:
    """A Redis Cluster URL: the test Redis when it is one (``make test-cluster``), else a local
    cluster of the test's own on OWN_CLUSTER_PORT.. (3 primaries, 3 replicas), stopped afterwards."""
    if ON_CLUSTER:
        yield TEST_REDIS_URL
        return
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        unavailable("a local Redis Cluster", FileNotFoundError("redis-server and redis-cli must be on PATH"))
    try:
        own = LocalCluster(OWN_CLUSTER_PORT)
    except RuntimeError as exc:
        unavailable("a local Redis Cluster", exc)
    try:
        yield own.url
    finally:
        own.stop()


def cluster_client(url: str) -> Any:
    return cluster.connect_url(url, socket_timeout=10, connect_timeout=2)


def keys_per_primary(client: Any, match: str) -> dict[str, list[bytes]]:
    """The keys matching ``match`` on each primary of a cluster client (node name -> keys)."""
    return {node.name: list(client.get_redis_connection(node).scan_iter(match=match, count=1000))
            for node in client.get_primaries()}

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
