"""The fault suite's harness does what the fault tests rely on: the proxy passes everything
through until armed, then loses exactly the armed reply after the command ran; a RedisProcess
keeps or loses its data as asked. Fakes only for faults: these run against the real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

from fault_support import contains, frame_end, is_command


@pytest.mark.parametrize(
    "frame",
    [b"+OK\r\n", b"-ERR no\r\n", b":42\r\n", b"$5\r\nhe\r\nl\r\n", b"$-1\r\n", b"*-1\r\n", b"*0\r\n",
     b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$0\r\n\r\n", b"%1\r\n+k\r\n*1\r\n_\r\n", b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
     b"~2\r\n,1.5\r\n#t\r\n", b"=7\r\ntxt:abc\r\n"],
)
def test_frame_end_finds_one_whole_value_and_waits_for_the_rest(frame):
    assert frame_end(frame + b":7\r\n", 0) == len(frame)  # a pipelined reply after it is not part of it
    for cut in range(len(frame)):
        assert frame_end(frame[:cut], 0) is None


@pytest.fixture
def key() -> str:
    name = f"t{uuid.uuid4().hex[:12]}:fault"
    yield name
    from support import single_redis

    client = single_redis()
    client.delete(name)
    client.close()


@pytest.mark.slow
def test_the_proxy_passes_everything_through_until_armed(lossy_proxy, key):
    client = lossy_proxy.client(db=9)
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        pipe.rpush(key, b"x" * (i * 50))  # replies and commands spanning many reads
    pipe.lrange(key, 0, -1)
    *lengths, values = pipe.execute()
    assert lengths == list(range(1, 201)) and [len(v) for v in values] == [i * 50 for i in range(200)]
    assert lossy_proxy.dropped == []
    assert all(c.commands == c.replies == c.forwarded for c in lossy_proxy.connections)
    assert len(lossy_proxy.commands(is_command("RPUSH"))) == 200
    client.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode, error", [("close", redis.ConnectionError), ("hold", redis.TimeoutError)])
def test_an_armed_proxy_loses_the_nth_matching_reply_after_the_command_ran(lossy_proxy, key, mode, error):
    client = lossy_proxy.client(db=9, socket_timeout=0.3, retry=None)
    drop = lossy_proxy.drop_reply(contains(key.encode()), nth=2, mode=mode)
    assert client.incrby(key, 1) == 1  # the first match is answered
    with pytest.raises(error):
        client.incrby(key, 10)
    assert drop.fired.is_set() and drop.reply == 11 and drop.command == (b"INCRBY", key.encode(), b"10")
    assert lossy_proxy.dropped == [drop]
    again = lossy_proxy.client(db=9)
    assert again.get(key) == b"11"  # the command whose reply was lost did run, once
    assert again.incrby(key, 1) == 12  # disarmed after firing
    again.close()
    client.close()


@pytest.mark.slow
def test_a_redis_process_keeps_its_data_across_a_kill_only_when_asked(make_redis_process):
    durable = make_redis_process(persistent=True, name="durable")
    client = durable.client()
    client.set("k", "v")
    durable.restart(keep_data=True)  # SIGKILL, then the AOF (fsync always) is replayed
    assert client.get("k") == b"v"
    durable.restart(keep_data=False)
    assert client.get("k") is None
    volatile = make_redis_process(persistent=False, name="volatile")
    assert volatile.port != durable.port
    other = volatile.client()
    other.set("k", "v")
    volatile.restart(keep_data=True)
    assert other.get("k") is None  # no AOF, no RDB: nothing to come back with
    durable.stop()
    assert not durable.running
    client.close()
    other.close()
