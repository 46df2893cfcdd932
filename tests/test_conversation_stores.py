"""The conversation stores of tiers/ (conversation_redis.py, conversation_sql.py): tiermem's errors
only, and a compare-and-set that a call sent again answers as it answered the first time.

The managers on top are tested through the contract in test_conversation_managers.py; a reply
lost on the wire is in test_faults_conversation_replies.py.
"""

from __future__ import annotations

import socket
import uuid

import pytest
import sqlalchemy

from support import TEST_POSTGRES_URL, real_redis
from team_support import delete_prefix
from tiers.conversation_redis import CAS, REQUEST_KEPT_MS, RedisConversations, open_client
from tiers.conversation_sql import SQLConversations
from tiers.conversations import StoredConversation
from tiers.errors import OutcomeUnknownError, TierUnavailableError

VALUE = StoredConversation("notes", 1, '[[1,"hello",1.0]]', 1.0)


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@pytest.fixture
def direct():
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield client, prefix
    delete_prefix(client, prefix)
    client.close()


def test_the_cas_script_sent_again_answers_with_the_version_its_first_call_wrote(direct):
    """The request key, not the hash's version, decides: another writer may have written on top."""
    client, prefix = direct
    key = f"{prefix}:conversation:{{c}}"
    mine, theirs = f"{key}:request:mine", f"{key}:request:theirs"
    call = lambda request, expected, text: client.evalsha(  # noqa: E731
        CAS.sha, 2, key, request, expected, text, 1, "[]", "1.0", 0, REQUEST_KEPT_MS)
    client.script_load(CAS.source)
    assert call(mine, 0, "mine") == 1
    assert call(mine, 0, "mine") == 1  # sent again: its version, not a conflict
    assert call(theirs, 1, "theirs") == 2
    assert call(mine, 0, "mine") == 1  # still, with another write on top of it
    assert call(f"{key}:request:other", 0, "late") == 0  # a real conflict stays one
    assert client.hget(key, "working_memory") == b"theirs" and client.hget(key, "version") == b"2"
    assert 0 < client.pttl(mine) <= REQUEST_KEPT_MS


async def test_an_unreachable_redis_is_a_tier_error_and_an_unsent_write_is_not_an_unknown_outcome():
    client = open_client(f"redis://127.0.0.1:{_refused_port()}/0")  # the manager's own client for a URL
    store = RedisConversations(client, "t", None)
    try:
        for call in (store.read("c"), store.delete("c"), store.remaining_ms("c")):
            with pytest.raises(TierUnavailableError, match="redis"):
                await call
        with pytest.raises(TierUnavailableError, match="cannot connect") as caught:
            await store.write_if("c", 0, VALUE)
        assert not isinstance(caught.value, OutcomeUnknownError)
    finally:
        await client.aclose()


def test_the_redis_store_takes_only_an_async_client():
    synchronous = real_redis()
    try:
        for client in (synchronous, object(), "redis://127.0.0.1:6379/9"):
            with pytest.raises(ValueError, match="async Redis client"):
                RedisConversations(client, "t", None)
    finally:
        synchronous.close()


async def test_a_broken_postgresql_commit_is_an_unknown_outcome_and_nothing_is_applied_twice(private_postgres_engine):
    """The connection dies at COMMIT (the backend is terminated just before it is sent): the store
    cannot tell whether it committed, says so, and does not send the write again."""
    engine = private_postgres_engine
    store = SQLConversations(engine, "t", threads=1)
    admin = sqlalchemy.create_engine(TEST_POSTGRES_URL)
    armed = [True]  # the next commit only

    def terminate_before_commit(conn):
        if armed.pop() if armed else False:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with admin.connect() as other:
                assert other.execute(sqlalchemy.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()

    sqlalchemy.event.listen(engine, "commit", terminate_before_commit)
    try:
        with pytest.raises(OutcomeUnknownError, match="while committing conversation 'c'"):
            await store.write_if("c", 0, VALUE)
        assert not armed
        assert await store.read("c") is None  # this one did not commit, and nothing sent it again
        assert await store.write_if("c", 0, VALUE) == 1  # the store works on a new connection
        assert (await store.read("c")).working_memory == "notes"
    finally:
        sqlalchemy.event.remove(engine, "commit", terminate_before_commit)
        await store.close()
        admin.dispose()


async def test_a_failing_statement_is_a_tier_error_of_the_database(tmp_path):
    store = SQLConversations(f"sqlite:///{tmp_path / 'c.sqlite'}", "t", threads=1)
    try:
        assert await store.write_if("c", 0, VALUE) == 1
        with store.engine.begin() as conn:
            conn.execute(sqlalchemy.text("DROP TABLE tiermem_conversations"))
        for call in (store.read("c"), store.write_if("c", 1, VALUE), store.delete("c"), store.purge_idle(2.0)):
            with pytest.raises(TierUnavailableError, match="database") as caught:
                await call
            assert not isinstance(caught.value, OutcomeUnknownError)
    finally:
        await store.close()
