"""The script transport on the real Redis: connections reused across calls, threads and forks,
and a Redis that restarted under a running engine."""

from __future__ import annotations

import gc
import os
import threading
import weakref

import pytest

from conftest import real_redis
from test_connection import DisposableRedis
from memory.config import MemoryConfig
from memory.engine import AgentMemoryAPI
from tiers.scripts import send_packed


def client_id(client) -> int:
    (reply,) = send_packed(client, lambda: [("CLIENT", "ID")])
    return reply


def test_calls_reuse_one_connection():
    client = real_redis()
    try:
        assert len({client_id(client) for _ in range(20)}) == 1
    finally:
        client.close()


def test_threads_get_their_own_replies_and_share_a_few_connections():
    client = real_redis()
    errors: list[str] = []
    connections: set[int] = set()

    def echo(thread: int) -> None:
        for call in range(300):
            sent = f"{thread}:{call}".encode()
            connection, *replies = send_packed(client, lambda: [("CLIENT", "ID"), ("ECHO", sent), ("ECHO", sent + b"!")])
            connections.add(connection)
            if replies != [sent, sent + b"!"]:
                errors.append(f"sent {sent!r}, got {replies!r}")

    threads = [threading.Thread(target=echo, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []
    assert 1 <= len(connections) <= 8


def test_a_client_that_is_gone_leaves_its_pool_free():
    pools = []
    for _ in range(5):
        client = real_redis()
        client_id(client)
        pools.append(weakref.ref(client.connection_pool))
        client.close()
        del client
    gc.collect()
    assert [pool() for pool in pools] == [None] * 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_use_its_parents_connection():
    client = real_redis()
    parent = client_id(client)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the connection it used, never run the parent's test code
        try:
            os.write(write, str(client_id(client)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = int(os.read(read, 64) or 0)
    os.waitpid(pid, 0)
    try:
        assert child and child != parent
        assert client_id(client) == parent  # the parent's connection is still in step
    finally:
        client.close()


def test_an_engine_carries_on_after_redis_restarts(tmp_path):
    """The connections it kept are dead and the new server has none of its scripts: the next
    store reconnects, loads the scripts again and succeeds."""
    server = DisposableRedis()
    try:
        with AgentMemoryAPI(MemoryConfig(redis_url=server.url, data_dir=str(tmp_path))) as api:
            api.store_agent_state("a", {"s": 1}, 1)
            server.stop()
            server.start()
            api.store_agent_state("a", {"s": 2}, 2)
            api.store_many([{"agent_id": "a", "data": {"s": 3}, "step_number": 3}])
            assert [r["contents"] for r in api.retrieve_by_time_range("a", 0, 9)] == [{"s": 2}, {"s": 3}]
    finally:
        server.stop()
