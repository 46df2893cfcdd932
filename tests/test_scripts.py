"""The script transport on the real Redis: connections reused across calls, threads and forks,
and a Redis that restarted under a running engine."""

from __future__ import annotations

import gc
import os
import re
import socket
import threading
import uuid
import weakref
from pathlib import Path

import pytest
import redis

import tiers
from fault_support import is_command
from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from support import DisposableRedis, single_redis
from tiers.bookkeeping import FIELDS
from tiers.scripts import SLOTS, SPECS, Script, evalsha, send_packed
from tiers.transport import NotSent, ReplyLost


def client_id(client) -> int:
    (reply,) = send_packed(client, lambda: [("CLIENT", "ID")])
    return reply


def test_calls_reuse_one_connection():
    client = single_redis()
    try:
        assert len({client_id(client) for _ in range(20)}) == 1
    finally:
        client.close()


def test_threads_get_their_own_replies_and_share_a_few_connections():
    client = single_redis()
    errors: list[str] = []
    connections: set[int] = set()

    def echo(thread: int) -> None:
        for call in range(300):
            sent = f"{thread}:{call}".encode()
            connection, *replies = send_packed(client,
                                               lambda sent=sent: [("CLIENT", "ID"), ("ECHO", sent), ("ECHO", sent + b"!")])
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
        client = single_redis()
        client_id(client)
        pools.append(weakref.ref(client.connection_pool))
        client.close()
        del client
    gc.collect()
    assert [pool() for pool in pools] == [None] * 5


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_use_its_parents_connection():
    client = single_redis()
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


# -- sent again after a lost reply -------------------------------------------------------------------

COUNT = "return {redis.call('INCR', KEYS[1]), ARGV[1], false, {redis.error_reply('no'), 'x:y'}}"


@pytest.mark.parametrize("mode", ["close", "hold"])
def test_a_once_script_whose_reply_was_lost_runs_once_and_answers_as_it_first_did(lossy_proxy, mode):
    """The call is sent again with its request id; the script finds its reply in the caller's
    slot and returns it (nested values, strings with the framing's characters, errors) without
    running a second time."""
    client, key = lossy_proxy.client(db=9, socket_timeout=1), f"{{once-{uuid.uuid4().hex[:8]}}}:n"
    script = Script(client, COUNT, once=True)
    try:
        drop = lossy_proxy.drop_reply(is_command("EVALSHA", script.sha), mode=mode)
        reply = script(keys=[key], args=["a|b:3;"])
        assert drop.fired.is_set()
        assert reply[:3] == [1, b"a|b:3;", None] and str(reply[3][0]) == "no" and reply[3][1] == b"x:y"
        assert single_redis().get(key) == b"1"
    finally:
        single_redis().delete(key, *single_redis().scan_iter(match=f"{key[:15]}*"))
        client.close()


def test_a_once_script_lost_twice_raises_reply_lost_and_ran_at_most_once(lossy_proxy):
    client, key = lossy_proxy.client(db=9, socket_timeout=1), f"{{once-{uuid.uuid4().hex[:8]}}}:n"
    script = Script(client, COUNT, once=True)
    try:
        for _ in range(2):  # the call, and the call sent again
            lossy_proxy.drop_reply(is_command("EVALSHA", script.sha))
        with pytest.raises(ReplyLost):
            script(keys=[key], args=["x"])
        assert single_redis().get(key) == b"1"
    finally:
        single_redis().delete(key, *single_redis().scan_iter(match=f"{key[:15]}*"))
        client.close()


@pytest.mark.slow
def test_nothing_sent_is_not_a_lost_reply():
    """A Redis that refuses the connection never ran the call: NotSent, not an unknown outcome."""
    client = redis.Redis(port=_free_port(), socket_connect_timeout=0.5)
    with pytest.raises(NotSent):
        evalsha(client, "0" * 40, [], [])
    client.close()


def test_once_needs_a_hash_tag_to_keep_its_slot_beside_the_keys():
    with pytest.raises(ValueError, match="hash tag"):
        SLOTS.form(["plain-key"], [])
    keys, args = SLOTS.form(["p:{agent}:meta"], ["a"])
    assert keys[1].startswith("p:{agent}:once:") and len(args) == 2


def test_the_scripts_name_the_bookkeeping_fields_as_tiers_bookkeeping_does():
    """Every field a script reads or writes in an agent's meta hash is one tiers/bookkeeping.py
    names (its one owner), and every script that sets the version sets the incarnation with it."""
    folder = Path(tiers.__file__).parent / "lua"
    meta_call = re.compile(r"redis\.call\('H[A-Z]+',\s*(?:meta|KEYS\[\d+\])\s*,\s*((?:'[a-z_]+'\s*,?\s*)+)")
    used = set()
    for path in [folder / "lib.lua", *(folder / f"{name}.lua" for name in SPECS)]:  # the engine's scripts
        for fields in meta_call.findall(path.read_text()):
            used |= set(re.findall(r"'([a-z_]+)'", fields))
    hashes_of_other_keys = {"id", "ltm", "incarnation"}  # the deployment hash (bind.lua)
    assert used - hashes_of_other_keys <= set(FIELDS), used - hashes_of_other_keys - set(FIELDS)
    assert "'inc'" in (folder / "lib.lua").read_text().split("local function bump")[1].split("end")[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
