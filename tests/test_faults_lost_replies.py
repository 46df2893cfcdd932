"""Invariant 11 (retry-safe calls) under a reply lost on the wire.

A LossyProxy (tests/fault_support.py) sits between the engine or team layer and the shared test
Redis. It lets the call's script run in Redis and loses its reply: the connection is closed (the
client sees a ConnectionError) or held silent (the client times out). tiers/scripts.py re-sends a
script once after either, so a re-sent call must take effect once and return the first call's
answer; a call that is not re-sent must raise ``OutcomeUnknownError`` and have taken effect at
most once. Each test names the effect it counts (tasks held, results, stream entries, library
rows, stored memories) and reads it straight from Redis or the SQL library, not through the call
under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from fault_support import all_of, contains, is_command, is_once_script, is_script
from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.team import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    ConflictContext,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
)
from support import single_redis
from team_support import delete_prefix
from tiers import errors
from tiers.coordination import collaboration, conflicts, sessions, signals
from tiers.coordination import patterns as pattern_store
from tiers.coordination import tasks as task_queue
from tiers.coordination.keys import TeamKeys
from tiers.errors import MemoryAPIException, MemoryStoreException
from tiers.keys import KeySchema

pytestmark = pytest.mark.slow

HOLD_TIMEOUT = 0.5  # seconds a client waits on a silent connection (mode "hold")
WHOLE_RANGE = (0, 2**53 - 1)


class _NotYetDefined(MemoryStoreException):
    """Stands in for an error class tiers.errors does not define yet; nothing raises it."""


OutcomeUnknownError = getattr(errors, "OutcomeUnknownError", _NotYetDefined)


def test_the_errors_of_uncertain_writes_are_store_errors():
    for name in ("OutcomeUnknownError", "StoreIncompleteError"):
        error = getattr(errors, name, None)
        assert isinstance(error, type) and issubclass(error, MemoryStoreException), f"tiers.errors.{name} is {error!r}"


def outcome(call: Callable[[], Any], what: str) -> tuple[str, Any]:
    """("answered", the call's answer) or ("unknown", the OutcomeUnknownError it raised); any other
    tiermem error fails the test, naming the call."""
    try:
        return "answered", call()
    except OutcomeUnknownError as exc:
        return "unknown", exc
    except MemoryAPIException as exc:
        pytest.fail(f"{what} raised {type(exc).__name__} after a lost reply: {exc}")


class Team:
    """A RedisShortTermMemory whose every command goes through the proxy, and a direct client
    (not through the proxy) to count effects with."""

    def __init__(self, memory: RedisShortTermMemory, direct: Any, prefix: str):
        self.memory, self.direct, self.prefix = memory, direct, prefix
        self.keys = TeamKeys(prefix)

    def tasks(self, team: str) -> Any:
        return self.keys.team(team)

    def hash(self, key: str) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.direct.hgetall(key).items()}


@pytest.fixture
def team(lossy_proxy, mode, tmp_path) -> Any:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = lossy_proxy.client(db=9, socket_timeout=HOLD_TIMEOUT if mode == "hold" else 5)
    memory = RedisShortTermMemory(client=client, key_prefix=prefix, data_dir=str(tmp_path / "team"))
    direct = single_redis()
    yield Team(memory, direct, prefix)
    memory.close()
    client.close()
    delete_prefix(direct, prefix)
    direct.close()


def fired(drop: Any) -> None:
    """The proxy did lose a reply: otherwise the test proved nothing."""
    assert drop.fired.is_set(), "the armed reply loss never happened"


# -- tasks --------------------------------------------------------------------------------------------


def task(task_id: str, priority: int) -> AgentTask:
    return AgentTask(task_id, "build", description=f"do {task_id}", priority=priority)


def test_claim_task_takes_one_task_and_returns_it(team, lossy_proxy, mode):
    crew = AgentCoordinator(team.memory, "crew")
    crew.add_task(task("task-a", 9))
    crew.add_task(task("task-b", 5))
    drop = lossy_proxy.drop_reply(is_once_script(task_queue.CLAIM), mode=mode)

    kind, claimed = outcome(lambda: crew.claim_task("worker", "build"), "claim_task")
    fired(drop)
    assert drop.reply[0] == b"task-a"  # what the call that ran in Redis claimed
    held = team.hash(team.tasks("crew").claims)
    if kind == "answered":
        got = claimed.task_id if claimed is not None else None
        assert got == "task-a", f"claim_task returned {got!r} while the worker holds {sorted(held)}"
    assert held == {"task-a": "worker"}, f"the worker holds {sorted(held)}"
    assert [t.task_id for t in crew.get_pending_tasks("build")] == ["task-b"]
    assert team.hash(team.tasks("crew").attempts) == {"task-a": "1"}


def test_claim_tasks_takes_one_batch_and_returns_it(team, lossy_proxy, mode):
    crew = AgentCoordinator(team.memory, "crew")
    for name, priority in (("task-a", 9), ("task-b", 8), ("task-c", 7), ("task-d", 6)):
        crew.add_task(task(name, priority))
    drop = lossy_proxy.drop_reply(is_once_script(task_queue.CLAIM), mode=mode)

    kind, claimed = outcome(lambda: crew.claim_tasks("worker", "build", 2), "claim_tasks")
    fired(drop)
    held = team.hash(team.tasks("crew").claims)
    if kind == "answered":
        got = [t.task_id for t in claimed]
        assert got == ["task-a", "task-b"], f"claim_tasks returned {got} while the worker holds {sorted(held)}"
    assert held == {"task-a": "worker", "task-b": "worker"}, f"the worker holds {sorted(held)}"
    assert [t.task_id for t in crew.get_pending_tasks("build")] == ["task-c", "task-d"]


def test_complete_task_records_the_result_once_and_returns_true(team, lossy_proxy, mode):
    crew = AgentCoordinator(team.memory, "crew")
    crew.add_task(task("task-a", 9))
    assert crew.claim_task("worker", "build").task_id == "task-a"
    drop = lossy_proxy.drop_reply(is_once_script(task_queue.COMPLETE), mode=mode)

    kind, done = outcome(lambda: crew.complete_task("task-a", {"answer": 42}, agent_id="worker"), "complete_task")
    fired(drop)
    if kind == "answered":
        assert done is True
    keys = team.tasks("crew")
    assert team.hash(keys.stats) == {"total": "1", "agent:worker": "1", "type:build": "1"}
    assert team.hash(keys.claims) == {}
    result = crew.get_result("task-a")
    assert result is not None and (result["result"], result["agent_id"]) == ({"answer": 42}, "worker")


def test_add_task_queues_the_task_once_and_returns_true(team, lossy_proxy, mode):
    crew = AgentCoordinator(team.memory, "crew")
    drop = lossy_proxy.drop_reply(is_once_script(task_queue.ADD), mode=mode)

    kind, added = outcome(lambda: crew.add_task(task("task-a", 9)), "add_task")
    fired(drop)
    if kind == "answered":
        assert added is True
    keys = team.tasks("crew")
    assert [t.task_id for t in crew.get_pending_tasks("build")] == ["task-a"]
    assert team.direct.zcard(keys.queue("build")) == 1
    assert team.direct.get(keys.seq) == b"1", "the task was queued more than once"


# -- signals ------------------------------------------------------------------------------------------

ALICE = AgentCredentials("alice", AccessTier.CONTRIBUTOR)
BOB = AgentCredentials("bob", AccessTier.CONTRIBUTOR)


@pytest.mark.parametrize("target", ["bob", None], ids=["targeted", "broadcast"])
def test_a_signal_sent_under_a_lost_reply_is_delivered_once(team, lossy_proxy, mode, target):
    drop = lossy_proxy.drop_reply(is_once_script(signals.SEND), mode=mode)

    kind, entry = outcome(lambda: team.memory.send_signal(ALICE, "ping", {"n": 1}, target_agent=target),
                          "send_signal")
    fired(drop)
    first = drop.reply.decode()  # the entry id of the send that ran
    received = team.memory.receive_signals(BOB)
    got = [(s["id"], s["data"]) for s in received]
    assert got == [(first, {"n": 1})], f"bob received {len(got)} signals: {got}"
    if kind == "answered":
        assert entry == first, f"send_signal returned {entry!r}, the first send's entry is {first!r}"
    assert team.memory.receive_signals(BOB) == []


def test_signals_under_a_lost_receive_reply_are_each_delivered_once(team, lossy_proxy, mode):
    for n in range(3):
        team.memory.send_signal(ALICE, "ping", {"n": n}, target_agent="bob")
    drop = lossy_proxy.drop_reply(is_once_script(signals.RECEIVE), mode=mode)

    kind, first = outcome(lambda: team.memory.receive_signals(BOB), "receive_signals")
    fired(drop)
    then = team.memory.receive_signals(BOB)
    delivered = (first if kind == "answered" else []) + then
    data = [s["data"] for s in delivered]
    assert data == [{"n": 0}, {"n": 1}, {"n": 2}], (
        f"after a lost receive reply bob got {data} (first call {kind}: "
        f"{[s['data'] for s in first] if kind == 'answered' else first!r}, then {[s['data'] for s in then]})")
    if kind == "answered":
        assert then == [], "the first call's answer is the one that counts"


# -- patterns -----------------------------------------------------------------------------------------

FINDER = AgentCredentials("finder", AccessTier.CONTRIBUTOR)
VALIDATOR = AgentCredentials("architect", AccessTier.VALIDATOR)
DECISION_SCRIPTS = {"take": pattern_store.TAKE_DECISION, "finish": pattern_store.FINISH_DECISION}


@pytest.mark.parametrize("lost", ["take", "finish"])
@pytest.mark.parametrize("decision", ["promote", "reject"])
def test_a_pattern_decided_under_a_lost_reply_is_decided_once(team, lossy_proxy, mode, decision, lost):
    memory = team.memory
    assert memory.stage_pattern(StagedPattern("pat-1", "finder", "optimization", "Eager loading", "avoid N+1"),
                                credentials=FINDER)
    drop = lossy_proxy.drop_reply(is_script(DECISION_SCRIPTS[lost]), mode=mode)

    if decision == "promote":
        kind, answer = outcome(lambda: memory.promote_pattern("pat-1", credentials=VALIDATOR), "promote_pattern")
    else:
        kind, answer = outcome(lambda: memory.reject_pattern("pat-1", "duplicate", credentials=VALIDATOR),
                               "reject_pattern")
    fired(drop)
    status = "promoted" if decision == "promote" else "rejected"
    library = memory.pattern_library
    staged = [p.pattern_id for p in memory.get_staged_patterns(VALIDATOR)]
    decided = library.get("pat-1")
    lease_left = bool(team.direct.exists(team.keys.decision("pat-1")))
    if kind == "answered":
        if decision == "promote":
            got = getattr(answer, "pattern_id", None)
            assert got == "pat-1", f"promote_pattern returned {answer!r}; still staged: {staged}"
        else:
            assert answer is True, f"reject_pattern returned {answer!r}; still staged: {staged}"
        assert decided is not None and decided.status == status
        assert staged == [] and not lease_left
    else:  # not decided, and free to decide again; or decided once and unstaged
        assert library.count(status=None) <= 1
        assert (decided is None and staged == ["pat-1"] and not lease_left) or (decided is not None and staged == [])


def test_a_pattern_staged_under_a_lost_reply_is_staged_once_and_told_so(team, lossy_proxy, mode):
    drop = lossy_proxy.drop_reply(is_once_script(pattern_store.STAGE), mode=mode)

    kind, staged = outcome(lambda: team.memory.stage_pattern(
        StagedPattern("pat-1", "finder", "optimization", "Eager loading", "avoid N+1"), credentials=FINDER),
        "stage_pattern")
    fired(drop)
    assert drop.reply == 1
    if kind == "answered":
        assert staged is True
    assert [p.pattern_id for p in team.memory.get_staged_patterns(VALIDATOR)] == ["pat-1"]
    assert team.direct.zcard(team.keys.staged_index("pat-1")) == 1


# -- sessions, collaboration state, conflicts -----------------------------------------------------------


def test_an_agent_joining_a_session_under_a_lost_reply_is_told_it_joined(team, lossy_proxy, mode):
    room = TeamSession(team.memory, "room", "review", credentials=ALICE)
    drop = lossy_proxy.drop_reply(is_once_script(sessions.JOIN), mode=mode)

    kind, joined = outcome(lambda: room.add_agent("worker"), "add_agent")
    fired(drop)
    assert drop.reply == 1  # the join that ran added the worker
    if kind == "answered":
        assert joined is True, "a re-sent join found the worker there and answered as if it had joined before"
    assert room.get_info()["participants"] == ["worker"]
    assert room.add_agent("worker") is False


def test_a_collaboration_state_persisted_under_a_lost_reply_is_the_newest(team, lossy_proxy, mode):
    memory = team.memory
    assert memory.persist_collaboration_state(FINDER, "older", {"trust_level": 0.1})
    drop = lossy_proxy.drop_reply(is_once_script(collaboration.PERSIST), mode=mode)

    kind, kept = outcome(lambda: memory.persist_collaboration_state(FINDER, "newer", {"trust_level": 0.9}),
                         "persist_collaboration_state")
    fired(drop)
    if kind == "answered":
        assert kept is True
    assert memory.restore_collaboration_state(FINDER) == ("newer", {"trust_level": 0.9})
    assert team.direct.zrange(team.keys.collab_index("finder"), 0, -1) == [b"older", b"newer"]


def test_a_conflict_resolved_under_a_lost_reply_keeps_that_resolution(team, lossy_proxy, mode):
    memory = team.memory
    memory.record_conflict(ConflictContext("c1", {"ann": {"position": "ship", "confidence": 0.9},
                                                  "ben": {"position": "wait", "confidence": 0.2}}), credentials=FINDER)
    drop = lossy_proxy.drop_reply(is_script(conflicts.RESOLVE), mode=mode)

    kind, resolved = outcome(lambda: memory.resolve_conflict("c1", credentials=VALIDATOR), "resolve_conflict")
    fired(drop)
    assert drop.reply == 1
    kept = memory.get_conflict("c1", credentials=VALIDATOR)
    assert kept.resolved and (kept.resolution["winner"], kept.resolution["resolved_by"]) == ("ann", "architect")
    if kind == "answered":
        assert resolved.to_dict() == kept.to_dict()


# -- the engine's stores ------------------------------------------------------------------------------


@pytest.fixture
def engine(lossy_proxy, mode, tmp_path) -> Any:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = lossy_proxy.client(db=9, socket_timeout=HOLD_TIMEOUT if mode == "hold" else 5)
    api = AgentMemoryAPI(MemoryConfig(key_prefix=prefix, data_dir=str(tmp_path / "data"), cleanup_interval=10_000,
                                      search_config={"text_embedding": "off"}), redis_client=client)
    direct = single_redis()
    yield api, direct, KeySchema(prefix)
    api.close()
    client.close()
    for key in list(direct.scan_iter(match=f"{prefix}*", count=1000)):
        direct.delete(key)
    direct.close()


def logged_adds(direct: Any, keys: KeySchema, agent_id: str) -> list[str]:
    """Every id the agent's change log says was added to a tier, once per time it says so."""
    added = []
    for _, fields in direct.xrange(keys.changes(agent_id)):
        if fields.get(b"op") == b"add":
            added += fields[b"ids"].decode().split()
    return added


def assert_stored_once(api: AgentMemoryAPI, direct: Any, keys: KeySchema, agent_id: str,
                       expected: dict[str, dict[str, Any]]) -> None:
    """The agent holds exactly ``expected`` (id -> contents): each found once by every read."""
    ids = sorted(expected)
    found = [m["memory_id"] for m in api.retrieve_by_time_range(agent_id, *WHOLE_RANGE)]
    assert sorted(found) == ids, f"time range found {found}, stored {ids}"
    for memory_id, contents in expected.items():
        similar = [m["memory_id"] for m in api.retrieve_similar_states(agent_id, contents, k=len(ids) + 5)]
        assert similar.count(memory_id) == 1, f"similar states found {memory_id} {similar.count(memory_id)} times"
        got = api.get_memory(agent_id, memory_id)
        assert got is not None and got["contents"] == contents
    assert api.get_memory_statistics(agent_id)["total_memories"] == len(ids)
    added = logged_adds(direct, keys, agent_id)
    assert sorted(added) == ids, f"the change log added {sorted(added)} for {ids}: a store ran twice"


def test_store_agent_state_under_a_lost_reply_stores_once(engine, lossy_proxy, mode):
    api, direct, keys = engine
    state = {"probe": "lost-put", "position": [1.0, 2.0], "hp": 7}
    drop = lossy_proxy.drop_reply(all_of(is_command("EVALSHA"), contains(b"lost-put")), mode=mode)

    kind, memory_id = outcome(lambda: api.store_agent_state("solo", state, 1), "store_agent_state")
    fired(drop)
    if kind == "answered":
        assert_stored_once(api, direct, keys, "solo", {memory_id: state})
    else:
        assert api.get_memory_statistics("solo")["total_memories"] <= 1


def test_store_many_under_a_lost_reply_stores_each_memory_once(engine, lossy_proxy, mode):
    api, direct, keys = engine
    agents = ["ann", "ben", "cy"]
    records = [{"agent_id": agent, "data": {"probe": f"many-{agent}", "i": i, "position": [i, a]}, "step_number": i}
               for a, agent in enumerate(agents) for i in range(5)]
    # the reply of the second agent's put is lost, after the first agent's reply came back
    drop = lossy_proxy.drop_reply(all_of(is_command("EVALSHA"), contains(b"many-ben")), mode=mode)

    kind, ids = outcome(lambda: api.store_many(records), "store_many")
    fired(drop)
    if kind == "answered":
        assert len(ids) == len(set(ids)) == len(records)
        for agent in agents:
            mine = {memory_id: r["data"] for memory_id, r in zip(ids, records) if r["agent_id"] == agent}
            assert_stored_once(api, direct, keys, agent, mine)
    else:
        for agent in agents:
            assert api.get_memory_statistics(agent)["total_memories"] in (0, 5)


def test_an_engine_on_a_url_gives_up_on_a_reply_that_never_comes_and_stores_once(lossy_proxy, tmp_path):
    """The engine's own client waits ``redis_timeout`` for a reply: one held back past it counts
    as lost, and the store sent again in its retry form finds the first one landed."""
    prefix = f"held{uuid.uuid4().hex[:6]}"
    config = MemoryConfig(redis_url=f"redis://127.0.0.1:{lossy_proxy.port}/9", key_prefix=prefix, redis_timeout=0.5,
                          data_dir=str(tmp_path / "data"), search_config={"text_embedding": "off"})
    direct = single_redis()
    try:
        with AgentMemoryAPI(config) as api:
            drop = lossy_proxy.drop_reply(all_of(is_command("EVALSHA"), contains(b"held-back")), mode="hold")
            memory_id = api.store_agent_state("solo", {"probe": "held-back"}, 1)
            fired(drop)
            assert_stored_once(api, direct, KeySchema(prefix), "solo", {memory_id: {"probe": "held-back"}})
    finally:
        delete_prefix(direct, prefix)
        direct.close()
