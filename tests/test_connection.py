"""Where Redis comes from, the embedded engine's durability, and what happens when Redis goes away."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from memory.api import AgentMemoryAPI, MemoryConfigException, MemoryRetrievalException, MemoryStoreException
from memory.config import MemoryConfig
from support import ON_CLUSTER, TEST_REDIS_URL, DisposableRedis, real_redis
from tiers import cluster
from tiers.connection import resolve


def test_empty_redis_url_forces_the_embedded_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "")
    with AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path))) as api:
        assert api.mode == "embedded"
        assert api.get_memory_statistics()["mode"] == "embedded"


def test_redis_url_from_the_environment(tmp_path, monkeypatch):
    client = real_redis()
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    prefix = f"tconn{uuid.uuid4().hex[:8]}"
    try:
        with AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), key_prefix=prefix)) as api:
            assert api.mode == "redis"
    finally:
        client.delete(*client.scan_iter(match=f"{prefix}:*"), f"{prefix}:deployment")
        client.close()


def test_local_redis_is_found_without_configuration(tmp_path):
    real_redis()
    connection = resolve(data_dir=str(tmp_path), environ={})
    try:
        assert connection.mode == "redis" and connection.where.startswith("redis://127.0.0.1:6379")
    finally:
        connection.close()


def test_explicit_unreachable_redis_is_a_config_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MemoryConfigException, match=str(port)):
        AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), redis_url=f"redis://127.0.0.1:{port}/0"))
    with pytest.raises(MemoryConfigException, match=str(port)):
        AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), stm_config={"host": "127.0.0.1", "port": port}))


def test_a_client_that_decodes_responses_is_refused(tmp_path):
    real_redis()
    if ON_CLUSTER:
        host, port = cluster.parse_nodes(TEST_REDIS_URL.split("://", 1)[1])[0]
        client = RedisCluster(host=host, port=port, decode_responses=True)
    else:
        client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    with pytest.raises(MemoryConfigException, match="decode_responses"):
        AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path)), redis_client=client)


# -- the embedded engine is durable ------------------------------------------------------------------------
def embedded_config(path, **options):
    return MemoryConfig(redis_url="", data_dir=str(path), **options)


def test_embedded_memories_survive_close_and_reopen(tmp_path):
    options = {"stm_config": {"memory_limit": 10}, "im_config": {"memory_limit": 10, "low_watermark": 1.0},
               "ltm_config": {"dictionary_samples": 10}}
    with AgentMemoryAPI(embedded_config(tmp_path, **options)) as api:
        stored = {api.store_agent_state("a", {"s": step}, step): step for step in range(40)}
        api.force_memory_maintenance()
        before = api.retrieve_by_time_range("a", 0, 39)
        assert {r["tier"] for r in before} == {"stm", "im", "ltm"}
    with AgentMemoryAPI(embedded_config(tmp_path, **options)) as again:
        after = again.retrieve_by_time_range("a", 0, 39)
        assert {r["memory_id"]: r["contents"]["s"] for r in after} == stored
        assert [r["tier"] for r in after] == [r["tier"] for r in before]
        assert again.list_agents() == ["a"]


def test_embedded_memories_survive_interpreter_exit_without_close(tmp_path):
    script = textwrap.dedent(
        f"""
        from memory.api import AgentMemoryAPI
        from memory.config import MemoryConfig
        api = AgentMemoryAPI(MemoryConfig(redis_url="", data_dir={str(tmp_path)!r}))
        for step in range(25):
            api.store_agent_action("a", {{"step": step}}, step)
        # no close(): the interpreter's exit must still keep them
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert [r["contents"]["step"] for r in api.retrieve_by_time_range("a", 0, 99)] == list(range(25))


def test_an_embedded_promotion_is_on_disk_before_ltm_lets_go_of_the_rows(tmp_path):
    """A memory promoted from LTM to IM must not live only in the process: a SIGKILL right
    after the promotion keeps it (what was stored before the last snapshot is never lost)."""
    options = {"stm_config": {"memory_limit": 10}, "im_config": {"memory_limit": 10},
               "ltm_config": {"promote_threshold": 3, "dictionary_samples": 10}}
    with AgentMemoryAPI(embedded_config(tmp_path, **options)) as api:
        ids = [api.store_agent_state("a", {"step": step}, step) for step in range(50)]
        api.force_memory_maintenance("a")
        assert api.get_memory("a", ids[0])["tier"] == "ltm"
    script = textwrap.dedent(
        f"""
        import os, signal
        from memory.api import AgentMemoryAPI
        from memory.config import MemoryConfig
        api = AgentMemoryAPI(MemoryConfig(redis_url="", data_dir={str(tmp_path)!r}, **{options!r}))
        for _ in range(3):
            api.get_memory("a", {ids[0]!r})
        assert api.force_memory_maintenance("a").ltm_to_im == 1
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr  # killed after the promotion, not before
    with AgentMemoryAPI(embedded_config(tmp_path, **options)) as again:
        assert again.get_memory("a", ids[0])["contents"] == {"step": 0}
        assert [r["memory_id"] for r in again.retrieve_by_time_range("a", 0, 49)] == ids


def test_two_engines_in_one_process_share_the_embedded_data(tmp_path):
    with AgentMemoryAPI(embedded_config(tmp_path)) as first, AgentMemoryAPI(embedded_config(tmp_path)) as second:
        first.store_agent_state("a", {"x": 1}, 1)
        assert len(second.retrieve_by_time_range("a", 0, 5)) == 1


def test_another_process_on_the_same_embedded_data_dir_is_refused(tmp_path):
    with AgentMemoryAPI(embedded_config(tmp_path)):
        script = textwrap.dedent(
            f"""
            from memory.api import AgentMemoryAPI, MemoryConfigException
            from memory.config import MemoryConfig
            try:
                AgentMemoryAPI(MemoryConfig(redis_url="", data_dir={str(tmp_path)!r}))
            except MemoryConfigException as exc:
                print("refused:", exc)
            """
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert "refused:" in out.stdout and "another process" in out.stdout


# -- Redis going away mid-run ---------------------------------------------------------------------------
@pytest.fixture
def vanishing_redis():
    server = DisposableRedis()
    yield server
    server.stop()


def test_writes_fail_loudly_and_reads_degrade_only_when_asked(tmp_path, vanishing_redis):
    options = {"redis_url": vanishing_redis.url, "data_dir": str(tmp_path), "cleanup_interval": 1000,
               "stm_config": {"memory_limit": 5}, "im_config": {"memory_limit": 5, "low_watermark": 1.0}}
    strict = AgentMemoryAPI(MemoryConfig(**options))
    lenient = AgentMemoryAPI(MemoryConfig(degrade_reads=True, **options))
    for step in range(20):
        strict.store_agent_state("a", {"s": step}, step)
    strict.force_memory_maintenance()
    in_ltm = [r["step_number"] for r in strict.retrieve_by_time_range("a", 0, 19) if r["tier"] == "ltm"]
    assert in_ltm
    exported = list(strict.export_memories(["a"]))

    vanishing_redis.stop()
    with pytest.raises(MemoryStoreException):
        strict.store_agent_state("a", {"s": 99}, 99)
    with pytest.raises(MemoryStoreException):
        strict.store_many([{"agent_id": "a", "data": {}, "step_number": 100}])
    with pytest.raises(MemoryRetrievalException):
        strict.retrieve_by_time_range("a", 0, 19)
    answer = lenient.retrieve_by_time_range("a", 0, 19)
    assert answer.degraded and "stm+im" in answer.failed_tiers
    assert [r["step_number"] for r in answer] == in_ltm
    assert all(r["tier"] == "ltm" for r in answer)
    for engine in (strict, lenient):  # an export is never a part passed off as the whole
        with pytest.raises(MemoryRetrievalException):
            list(engine.export_memories(["a"]))
        with pytest.raises(MemoryStoreException):
            engine.import_memories(exported)
    with pytest.raises(MemoryRetrievalException):
        strict.retrieve_by_attributes("a", {"s": {"$lte": 19}})
    odd = lenient.retrieve_by_attributes("a", {"s": {"$in": list(range(1, 20, 2))}}, limit=3)
    assert odd.degraded and [r["step_number"] for r in odd] == [s for s in in_ltm if s % 2][:3]
    strict.close()
    lenient.close()


def test_embedded_engine_that_loses_its_connection_raises_typed_errors(tmp_path):
    import fakeredis

    server = fakeredis.FakeServer()
    api = AgentMemoryAPI(MemoryConfig(data_dir=str(tmp_path), key_prefix="gone"),
                         redis_client=fakeredis.FakeRedis(server=server))
    api.store_agent_state("a", {"x": 1}, 1)
    server.connected = False
    with pytest.raises(MemoryStoreException):
        api.store_agent_state("a", {"x": 2}, 2)
    with pytest.raises(MemoryRetrievalException):
        api.retrieve_by_time_range("a", 0, 5)
    server.connected = True
    assert [r["contents"] for r in api.retrieve_by_time_range("a", 0, 5)] == [{"x": 1}]
    api.close()


def test_a_corrupted_embedded_snapshot_is_a_clear_error_and_is_kept(tmp_path):
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        api.store_agent_state("a", {"x": 1}, 1)
    snapshot = tmp_path / "embedded-redis.msgpack.zst"
    snapshot.write_bytes(b"not a snapshot")
    with pytest.raises(MemoryConfigException, match="cannot be read"):
        AgentMemoryAPI(embedded_config(tmp_path))
    assert snapshot.read_bytes() == b"not a snapshot"
    # the data directory is not left locked by the failed attempt
    snapshot.unlink()
    with AgentMemoryAPI(embedded_config(tmp_path)) as again:
        assert again.mode == "embedded"


def snapshot_file(path):
    snapshot = path / "embedded-redis.msgpack.zst"
    return snapshot.read_bytes(), snapshot.stat().st_mtime_ns


def test_an_embedded_engine_that_only_read_leaves_its_snapshot_as_it_was(tmp_path):
    with AgentMemoryAPI(embedded_config(tmp_path, stm_config={"memory_limit": 10})) as api:
        ids = [api.store_agent_state("a", {"s": step}, step) for step in range(30)]
        api.force_memory_maintenance()
    written = snapshot_file(tmp_path)
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert [r["memory_id"] for r in api.retrieve_by_time_range("a", 0, 99)] == ids
        api.get_memory_statistics()
        api.list_agents()
        assert api.deployment["id"]
    assert snapshot_file(tmp_path) == written

    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert api.get_memory("a", ids[-1])["metadata"]["retrieval_count"] == 1  # a focused read counts: a write
    assert snapshot_file(tmp_path)[1] != written[1]
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert api.get_memory("a", ids[-1])["metadata"]["retrieval_count"] == 2
        api.store_agent_state("a", {"s": 30}, 30)
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert [r["contents"]["s"] for r in api.retrieve_by_time_range("a", 0, 99)] == list(range(31))


def test_a_write_by_another_engine_on_the_same_embedded_server_is_snapshotted_whoever_closes_last(tmp_path):
    reader = AgentMemoryAPI(embedded_config(tmp_path))
    writer = AgentMemoryAPI(embedded_config(tmp_path))
    writer.store_agent_state("a", {"s": 1}, 1)
    writer.close()  # snapshots
    reader.retrieve_by_time_range("a", 0, 9)
    reader.close()  # read only since the last snapshot: nothing to write
    again = AgentMemoryAPI(embedded_config(tmp_path))
    other = AgentMemoryAPI(embedded_config(tmp_path))
    other.store_agent_state("a", {"s": 2}, 2)
    again.close()  # the reader closes first: the other engine's write is in this snapshot
    other.close()
    with AgentMemoryAPI(embedded_config(tmp_path)) as api:
        assert [r["contents"]["s"] for r in api.retrieve_by_time_range("a", 0, 9)] == [1, 2]


def test_the_embedded_change_counter_sees_every_kind_of_write_and_no_read(tmp_path):
    from tiers import embedded

    server = embedded.acquire(tmp_path)
    try:
        client = server.client()
        writes = [
            lambda: client.set("s", "1"), lambda: client.incr("n"), lambda: client.hset("h", "f", "v"),
            lambda: client.zadd("z", {"m": 1}), lambda: client.sadd("set", "m"), lambda: client.rpush("l", "x"),
            lambda: client.lpop("l"), lambda: client.hdel("h", "f"), lambda: client.zrem("z", "m"),
            lambda: client.pexpire("s", 100_000), lambda: client.persist("s"), lambda: client.rename("s", "t"),
            lambda: client.delete("t"), lambda: client.eval("return redis.call('SET', KEYS[1], 'x')", 1, "e"),
            lambda: client.pipeline(transaction=True).set("p", 1).hset("q", "f", 1).execute(),
            lambda: client.xadd("stream", {"f": "v"}), lambda: client.flushdb(),
        ]
        reads = [
            lambda: client.get("s"), lambda: client.hgetall("h"), lambda: client.zrange("z", 0, -1),
            lambda: client.smembers("set"), lambda: client.lrange("l", 0, -1), lambda: list(client.scan_iter()),
            lambda: client.pttl("e"), lambda: client.type("e"), lambda: client.eval("return redis.call('GET', KEYS[1])", 1, "e"),
            lambda: client.pipeline(transaction=True).get("p").hgetall("q").execute(), lambda: client.script_load("return 1"),
        ]
        for number, write in enumerate(writes):
            if number == len(writes) - 1:
                client.set("before-flush", 1)  # FLUSHDB of a database with keys in it
            before = server.changes
            write()
            assert server.changes > before, number
            before = server.changes
            for read in reads:
                read()
            assert server.changes == before, number
    finally:
        embedded.release(server)


def test_an_embedded_snapshot_holding_a_ttl_is_written_again_to_record_its_countdown(tmp_path):
    from tiers import embedded

    server = embedded.acquire(tmp_path)
    server.client().set("k", "v", px=600_000)
    embedded.release(server)
    first = snapshot_file(tmp_path)
    server = embedded.acquire(tmp_path)
    assert server.client().pttl("k") <= 600_000
    embedded.release(server)  # only read, but the file's TTL would no longer be true
    assert snapshot_file(tmp_path)[1] != first[1]
    server = embedded.acquire(tmp_path)
    server.client().delete("k")
    embedded.release(server)
    server = embedded.acquire(tmp_path)
    assert not server.unchanged() or server.save() is False
    emptied = snapshot_file(tmp_path)
    embedded.release(server)
    assert snapshot_file(tmp_path) == emptied  # no TTL left, nothing changed: left alone
