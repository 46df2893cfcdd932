"""Every public call of the coordination layer refuses bad input with the right MemoryAPIException
subclass and changes nothing stored (hypothesis, on both Redis engines).

One table of cases: each names a call, the parameter it gets wrong, a strategy of bad values for
it and the error expected (InvalidInputError for a call's arguments, MemoryConfigException for a
connection option). Every other argument is valid. The state seeded before (working memory, a
session, pending, claimed and completed tasks, staged patterns, a conflict, collaboration state,
an unread signal) is compared after every example, as stored (every key, and the embedded
engine's in-process queues) and as a dashboard reads it.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory import (
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    AgentWorkspace,
    ConflictContext,
    PatternLibrary,
    RedisShortTermMemory,
    StagedPattern,
    TeamSession,
    check_redis_connection,
    get_railway_redis,
    get_redis_memory,
    validation,
)
from memory.team.ttl import MAX_SECONDS
from memory.team.values import MAX_TEXT, MAX_VALUE_BYTES
from support import FakeClock
from team_support import stored
from tiers.errors import InvalidInputError, MemoryAPIException, MemoryConfigException

PROPERTY = settings(
    max_examples=12, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- bad values ---------------------------------------------------------------------------------
HUGE = [10**400, -(10**400), 10**5000]  # beyond a float; the last beyond what repr() prints
objects = st.sampled_from([object(), {1, 2}, 1j, frozenset({3}), range(2)])  # none of them callable or packable
not_a_str = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=4),
                      st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
                      objects)
surrogates = st.builds(lambda a, s, b: a + s + b, st.text(max_size=4), st.characters(categories=["Cs"]), st.text(max_size=4))
with_nul = st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=4), st.text(max_size=4))
long_text = st.just(MAX_TEXT + 1).map(lambda n: "x" * n)  # built when drawn: a failure report does not print it
bad_free_text = st.one_of(not_a_str.filter(lambda v: v is not None), surrogates, with_nul)  # where long text is fine
bad_text = st.one_of(bad_free_text, long_text)
blank = st.sampled_from(["", " ", "\t\n"])
forbidden = st.sampled_from(list(" \n\t{}#*?!,;'\"<>[]~%&()$^`|\\") + ["é", "\ud800", "\x00", "\u200b"])
bad_ids = st.one_of(
    st.just(""), st.just("a" * 129), not_a_str.filter(lambda v: v is not None), surrogates,
    st.builds(lambda a, c, b: a + c + b, st.text(string.ascii_letters, max_size=4), forbidden, st.text(string.ascii_letters, max_size=4)),
)
bad_signal_types = st.one_of(bad_ids, st.just("has:colon"), st.just("x" * 65))
bad_numbers = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, *HUGE]), st.booleans(), st.text(max_size=3),
                        st.just(None), st.just([0.5]), objects)
bad_fractions = st.one_of(bad_numbers, st.floats(min_value=1.0, exclude_min=True, allow_nan=False, allow_infinity=False),
                          st.floats(max_value=0.0, exclude_max=True, allow_nan=False, allow_infinity=False), st.integers(min_value=2))
SECONDS_EDGES = [0, 0.0, -0.0, -1, -0.5, 0.0004, MAX_SECONDS + 1, 10**8, math.inf, -math.inf, math.nan, *HUGE,
                 True, False, "60", b"60", [60]]  # None means "the default" where one is allowed: never bad
WAIT_EDGES = [-1, -0.001, MAX_SECONDS + 1, math.inf, math.nan, *HUGE, True, "1", None]
bad_seconds = st.one_of(
    st.sampled_from(SECONDS_EDGES), st.integers(max_value=0), st.floats(max_value=0.0, allow_nan=False),
    st.floats(min_value=1e-9, max_value=0.000499), st.integers(min_value=MAX_SECONDS + 1),
    st.floats(min_value=MAX_SECONDS * 1.001, allow_nan=False), bad_numbers.filter(lambda v: v is not None),
)
bad_waits = st.one_of(st.sampled_from(WAIT_EDGES), st.integers(max_value=-1), st.floats(max_value=-1e-9, allow_nan=False),
                      st.integers(min_value=MAX_SECONDS + 1), bad_numbers)
bad_values = st.one_of(  # what msgpack cannot carry, or more than one key holds
    objects, st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1), surrogates,
    st.dictionaries(surrogates, st.integers(), min_size=1, max_size=1), st.lists(objects, min_size=1, max_size=2),
    st.just(b"x" * (MAX_VALUE_BYTES + 1)), st.just({"nested": [1, {"deep": object()}]}),
)
bad_credentials = st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(list(AccessTier)), st.just(("me", 4)),
                            st.just({"agent_id": "me", "tier": 4}), objects)
bad_tiers = st.one_of(st.integers().filter(lambda n: n not in (1, 2, 3, 4)), st.booleans(), st.floats(), st.text(max_size=3),
                      st.none(), st.sampled_from([2.0, "CONTRIBUTOR"]))
not_a_memory = st.one_of(not_a_str.filter(lambda v: v is not None), st.text(max_size=5))
not_a_mapping = st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2), objects)


# -- what every case acts on --------------------------------------------------------------------
S, O = AccessTier.STEWARD, AccessTier.OBSERVER  # noqa: E741 - one-letter tiers, as in test_team_access.py


def seed(memory: RedisShortTermMemory, data_dir: str) -> SimpleNamespace:
    worker = AgentWorkspace("worker", short_term_memory=memory, session_id="collab-1")
    worker.stash("notes", {"files": 3})
    worker.stage_pattern(StagedPattern("p1", "worker", "security", "Boundary checks", "validate early", 0.8))
    worker.stage_pattern(StagedPattern("p2", "worker", "style", "Short names", "", 0.4))
    worker.record_conflict(ConflictContext("c1", {"worker": {"position": "ship"}, "lead": {"position": "wait", "confidence": 0.9}}))
    worker.collaboration_state.trust_level = 0.7
    worker.persist_collaboration_state()
    worker.send_signal("review_done", {"ok": True}, target_agent="lead")
    team = AgentCoordinator(memory, "team")
    team.register_agent("worker", ["review"])
    for task_id in ("t1", "t2", "t3"):
        team.add_task(AgentTask(task_id, "review", f"do {task_id}", priority=5, context={"n": task_id}))
    for _task_id in ("t1", "t2"):  # claimed in priority order
        team.claim_task("worker", "review")
    team.complete_task("t1", {"found": 1}, agent_id="worker")
    room = TeamSession(memory, "room", "Review PR #7")
    room.add_agent("worker")
    room.share("scope", {"files": ["a.py"]})
    return SimpleNamespace(
        memory=memory, team=team, room=room, worker=worker, data_dir=data_dir,
        boss=AgentWorkspace("boss", short_term_memory=memory, access_tier=S),
        steward=AgentCredentials("boss", S),
    )


def observed(ctx: SimpleNamespace) -> dict[str, Any]:
    """The seeded state as a dashboard (an OBSERVER, which renews and requeues nothing) reads it."""
    memory = ctx.memory
    dash = AgentWorkspace("dash", short_term_memory=memory, access_tier=O)
    board = AgentCoordinator(memory, "team", credentials=dash.credentials)
    room = TeamSession(memory, "room", credentials=dash.credentials)
    return {
        "working": dash.retrieve("notes", agent_id="worker"),
        "session": (room.get_info(), room.get("scope")),
        "pending": [t.to_dict() for t in board.get_pending_tasks()],
        "claimed": [ctx.team._queue.holder(task_id, memory.now_ms()) for task_id in ("t1", "t2", "t3")],
        "results": [board.get_result(task_id) for task_id in ("t1", "t2", "t3")],
        "aggregate": board.aggregate_results(),
        "staged": [p.to_dict() for p in dash.get_staged_patterns()],
        "conflict": dash.get_conflict("c1").to_dict(),
        "collaboration": memory.restore_collaboration_state(ctx.worker.credentials),
        "agents": (board.get_active_agents(), board.get_capabilities("worker")),
    }


@dataclass(frozen=True)
class Case:
    name: str
    bad: st.SearchStrategy
    call: Callable[[SimpleNamespace, Any], Any]
    error: type[MemoryAPIException] = InvalidInputError


def _task(**fields: Any) -> AgentTask:
    task = AgentTask("t9", "review")
    for name, value in fields.items():  # the fields can be changed after construction: add_task checks again
        setattr(task, name, value)
    return task


def _conflict(**fields: Any) -> ConflictContext:
    conflict = ConflictContext("c9", {"a": {"position": 1}, "b": {"position": 2}})
    for name, value in fields.items():
        setattr(conflict, name, value)
    return conflict


def _pattern(**fields: Any) -> StagedPattern:
    return StagedPattern(**{"pattern_id": "p9", "agent_id": "boss", "pattern_type": "t", "name": "n",
                            "description": "d", **fields})


def _persist(ctx: SimpleNamespace, **fields: Any) -> Any:
    me = AgentWorkspace("worker", short_term_memory=ctx.memory, session_id="collab-1")
    for name, value in fields.items():
        target = me if name == "current_empathy_level" else me.collaboration_state
        setattr(target, name, value)
    return me.persist_collaboration_state()


def _memory(ctx: SimpleNamespace, **options: Any) -> Any:
    options = {"use_mock": True, "data_dir": ctx.data_dir, "key_prefix": ctx.memory.keys.prefix, **options}
    return RedisShortTermMemory(**options).close()


Config = MemoryConfigException
bad_paths = st.one_of(st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=1), st.just("data\ud800"), with_nul, objects)
bad_prefixes = st.one_of(st.just(""), st.text(min_size=65, max_size=70, alphabet="a"), surrogates, with_nul,
                         st.builds(lambda c: "pre" + c, forbidden | st.just(":")), not_a_str.filter(lambda v: v is not None))

CASES = [
    # RedisShortTermMemory: working memory
    Case("stash key", bad_ids, lambda c, bad: c.memory.stash(bad, 1)),
    Case("stash value", bad_values, lambda c, bad: c.memory.stash("notes", bad)),
    Case("stash ttl", bad_seconds, lambda c, bad: c.memory.stash("notes", 2, ttl=bad)),
    Case("stash credentials", bad_credentials, lambda c, bad: c.memory.stash("notes", 2, credentials=bad)),
    Case("store_working_result ttl", bad_seconds, lambda c, bad: c.memory.store_working_result("notes", 2, ttl=bad)),
    Case("retrieve key", bad_ids, lambda c, bad: c.memory.retrieve(bad)),
    Case("retrieve agent_id", bad_ids, lambda c, bad: c.memory.retrieve("notes", agent_id=bad)),
    Case("get_working_result credentials", bad_credentials, lambda c, bad: c.memory.get_working_result("notes", bad)),
    # signals
    Case("send_signal type", bad_signal_types, lambda c, bad: c.memory.send_signal(None, bad, 1, "lead")),
    Case("send_signal data", bad_values, lambda c, bad: c.memory.send_signal(None, "note", bad, "lead")),
    Case("send_signal target", bad_ids, lambda c, bad: c.memory.send_signal(None, "note", 1, bad)),
    Case("send_signal credentials", bad_credentials, lambda c, bad: c.memory.send_signal(bad, "note", 1)),
    Case("receive_signals type", bad_signal_types.filter(lambda v: v is not None),
         lambda c, bad: c.memory.receive_signals(AgentCredentials("lead"), bad)),
    Case("receive_signals timeout", bad_waits, lambda c, bad: c.memory.receive_signals(AgentCredentials("lead"), timeout=bad)),
    Case("receive_signals credentials", bad_credentials, lambda c, bad: c.memory.receive_signals(bad)),
    # patterns
    Case("stage_pattern object", st.one_of(not_a_mapping, st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
         lambda c, bad: c.memory.stage_pattern(bad, c.steward)),
    Case("stage_pattern a pattern and fields", st.just(1), lambda c, bad: c.memory.stage_pattern(_pattern(), c.steward, name="x")),
    Case("stage_pattern field names", st.text(string.ascii_lowercase, min_size=1, max_size=8).filter(
        lambda n: n not in (*StagedPattern.__dataclass_fields__, "pattern", "credentials")), lambda c, bad: c.memory.stage_pattern(
        credentials=c.steward, pattern_id="p9", pattern_type="t", name="n", description="d", **{bad: 1})),
    Case("stage_pattern missing fields", st.sampled_from(["pattern_id", "pattern_type", "name", "description"]),
         lambda c, bad: c.memory.stage_pattern(credentials=c.steward, **{k: "x" for k in ("pattern_id", "pattern_type", "name", "description") if k != bad})),
    Case("stage_pattern pattern_id", bad_ids, lambda c, bad: c.memory.stage_pattern(pattern_id=bad, pattern_type="t", name="n", description="d")),
    Case("stage_pattern name", st.one_of(bad_text, blank, st.just("n" * 513)),
         lambda c, bad: c.memory.stage_pattern(pattern_id="p9", pattern_type="t", name=bad, description="d")),
    Case("stage_pattern context value", bad_values, lambda c, bad: c.memory.stage_pattern(_pattern(context={"k": bad}), c.steward)),
    Case("StagedPattern context", not_a_mapping, lambda c, bad: _pattern(context=bad)),
    Case("StagedPattern pattern_type", st.one_of(bad_text, blank, st.just("t" * 129)), lambda c, bad: _pattern(pattern_type=bad)),
    Case("StagedPattern description", bad_free_text, lambda c, bad: _pattern(description=bad)),
    Case("StagedPattern code", bad_free_text, lambda c, bad: _pattern(code=bad)),
    Case("StagedPattern confidence", bad_fractions, lambda c, bad: _pattern(confidence=bad)),
    Case("StagedPattern staged_at", bad_numbers.filter(lambda v: v is not None) | st.just(-1.0), lambda c, bad: _pattern(staged_at=bad)),
    Case("StagedPattern agent_id", bad_ids, lambda c, bad: _pattern(agent_id=bad)),
    Case("get_staged_patterns credentials", bad_credentials, lambda c, bad: c.memory.get_staged_patterns(bad)),
    Case("promote_pattern id", bad_ids, lambda c, bad: c.memory.promote_pattern(bad, c.steward)),
    Case("reject_pattern id", bad_ids, lambda c, bad: c.memory.reject_pattern(bad, "no", c.steward)),
    Case("reject_pattern reason", st.one_of(bad_text, blank), lambda c, bad: c.memory.reject_pattern("p1", bad, c.steward)),
    Case("reject_pattern credentials", bad_credentials, lambda c, bad: c.memory.reject_pattern("p1", "no", bad)),
    Case("PatternLibrary.find", bad_text, lambda c, bad: c.memory.pattern_library.find(pattern_type=bad)),
    Case("PatternLibrary.find status", st.one_of(st.text(max_size=5), st.integers()), lambda c, bad: c.memory.pattern_library.find(status=bad)),
    Case("PatternLibrary.get", bad_ids, lambda c, bad: c.memory.pattern_library.get(bad)),
    Case("PatternLibrary.count", st.one_of(st.text(max_size=5), st.integers()), lambda c, bad: c.memory.pattern_library.count(bad)),
    Case("PatternLibrary.decide pattern", not_a_mapping, lambda c, bad: c.memory.pattern_library.decide(bad, "promoted", "boss", 1.0, None)),
    Case("PatternLibrary.decide reason", bad_text.filter(lambda v: v is not None),
         lambda c, bad: c.memory.pattern_library.decide(_pattern(), "rejected", "boss", 1.0, bad)),
    Case("PatternLibrary engine", not_a_memory, lambda c, bad: PatternLibrary(bad, "ns"), Config),
    Case("PatternLibrary namespace", bad_prefixes, lambda c, bad: PatternLibrary(c.memory.pattern_library.engine, bad), Config),
    # conflicts
    Case("record_conflict object", st.one_of(not_a_mapping, st.just({"conflict_id": "c9"})), lambda c, bad: c.memory.record_conflict(bad)),
    Case("record_conflict description changed", bad_free_text, lambda c, bad: c.memory.record_conflict(_conflict(description=bad))),
    Case("record_conflict positions changed", st.one_of(not_a_mapping, st.just({"a": {"position": 1}}),
                                                         bad_fractions.map(lambda v: {"a": {"position": 1, "confidence": v}, "b": {"position": 2}})),
         lambda c, bad: c.memory.record_conflict(_conflict(positions=bad))),
    Case("record_conflict position value", bad_values, lambda c, bad: c.memory.record_conflict(
        ConflictContext("c9", {"a": {"position": bad}, "b": {"position": 2}}))),
    Case("ConflictContext weight", bad_numbers | st.just(-1), lambda c, bad: ConflictContext(
        "c9", {"a": {"position": 1, "weight": bad}, "b": {"position": 2}})),
    Case("ConflictContext resolved", st.one_of(st.integers(), st.text(max_size=2), st.none()),
         lambda c, bad: ConflictContext("c9", {"a": {"position": 1}, "b": {"position": 2}}, resolved=bad)),
    Case("ConflictContext agent", bad_ids.filter(lambda v: v.__hash__ is not None), lambda c, bad: ConflictContext("c9", {bad: {"position": 1}, "b": {"position": 2}})),
    Case("get_conflict id", bad_ids, lambda c, bad: c.memory.get_conflict(bad)),
    Case("resolve_conflict id", bad_ids, lambda c, bad: c.memory.resolve_conflict(bad, credentials=c.steward)),
    Case("resolve_conflict strategy", st.one_of(not_a_str, st.text(max_size=8).filter(lambda v: v != "weighted")), lambda c, bad: c.memory.resolve_conflict("c1", bad, c.steward)),
    # collaboration state
    Case("persist_collaboration_state session", bad_ids, lambda c, bad: c.memory.persist_collaboration_state(None, bad, {})),
    Case("persist_collaboration_state state", st.one_of(not_a_mapping, bad_values.map(lambda v: {"k": v})),
         lambda c, bad: c.memory.persist_collaboration_state(None, "collab-1", bad)),
    Case("persist trust_level", bad_fractions, lambda c, bad: _persist(c, trust_level=bad)),
    Case("persist counts", st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63), st.floats(), st.booleans(), st.text(max_size=2)),
         lambda c, bad: _persist(c, successful_interventions=bad)),
    Case("persist shared_context", st.one_of(not_a_mapping, bad_values.map(lambda v: {"k": v})), lambda c, bad: _persist(c, shared_context=bad)),
    Case("persist last_updated", bad_numbers, lambda c, bad: _persist(c, last_updated=bad)),
    Case("persist empathy level", st.one_of(st.integers().filter(lambda n: not 1 <= n <= 5), st.floats(), st.text(max_size=2)),
         lambda c, bad: _persist(c, current_empathy_level=bad)),
    Case("restore_collaboration_state session", bad_ids, lambda c, bad: c.memory.restore_collaboration_state(None, bad)),
    # connection options and factories
    Case("memory url", not_a_str.filter(lambda v: v is not None), lambda c, bad: _memory(c, url=bad, use_mock=False), Config),
    Case("memory use_mock", st.one_of(st.integers(), st.text(max_size=2), st.none()), lambda c, bad: _memory(c, use_mock=bad), Config),
    Case("memory client", not_a_memory, lambda c, bad: _memory(c, client=bad, use_mock=False), Config),
    Case("memory data_dir", bad_paths, lambda c, bad: _memory(c, data_dir=bad), Config),
    Case("memory key_prefix", bad_prefixes, lambda c, bad: _memory(c, key_prefix=bad), Config),
    Case("memory clock", not_a_memory, lambda c, bad: _memory(c, clock=bad), Config),
    Case("memory environ", not_a_mapping, lambda c, bad: _memory(c, environ=bad), Config),
    Case("memory ltm_url", not_a_str.filter(lambda v: v is not None), lambda c, bad: _memory(c, ltm_url=bad), Config),
    Case("memory ltm_engine", not_a_memory, lambda c, bad: _memory(c, ltm_engine=bad), Config),
    Case("memory credentials", bad_credentials, lambda c, bad: _memory(c, credentials=bad)),
    Case("get_redis_memory url", not_a_str.filter(lambda v: v is not None), lambda c, bad: get_redis_memory(bad), Config),
    Case("get_railway_redis host", st.one_of(not_a_str.filter(lambda v: v is not None), st.just(""), surrogates, with_nul, st.just("a b\n")),
         lambda c, bad: get_railway_redis(bad), Config),
    Case("get_railway_redis port", st.one_of(st.integers().filter(lambda n: not 1 <= n <= 65535), st.booleans(), st.text(max_size=4), st.floats()),
         lambda c, bad: get_railway_redis("127.0.0.1", bad), Config),
    Case("get_railway_redis password", st.one_of(st.integers(), surrogates, with_nul, objects),
         lambda c, bad: get_railway_redis("127.0.0.1", 6379, bad), Config),
    Case("get_railway_redis db", st.one_of(st.integers(max_value=-1), st.booleans(), st.text(max_size=2)),
         lambda c, bad: get_railway_redis("127.0.0.1", db=bad), Config),
    Case("get_railway_redis ssl", st.one_of(st.integers(), st.text(max_size=2), st.none()),
         lambda c, bad: get_railway_redis("127.0.0.1", ssl=bad), Config),
    Case("get_railway_redis with another connection", st.sampled_from([{"client": None}, {"url": ""}, {"use_mock": True}]),
         lambda c, bad: get_railway_redis("127.0.0.1", **bad), Config),
    Case("check_redis_connection url", not_a_str.filter(lambda v: v is not None), lambda c, bad: check_redis_connection(bad), Config),
    Case("check_redis_connection environ", not_a_mapping, lambda c, bad: check_redis_connection(environ=bad), Config),
    Case("AgentCredentials agent_id", bad_ids, lambda c, bad: AgentCredentials(bad)),
    Case("AgentCredentials tier", bad_tiers, lambda c, bad: AgentCredentials("me", bad)),
    # AgentCoordinator
    Case("AgentCoordinator memory", not_a_memory, lambda c, bad: AgentCoordinator(bad, "team")),
    Case("AgentCoordinator team_id", bad_ids, lambda c, bad: AgentCoordinator(c.memory, bad)),
    Case("AgentCoordinator lease_seconds", bad_seconds, lambda c, bad: AgentCoordinator(c.memory, "team", lease_seconds=bad)),
    Case("AgentCoordinator active_seconds", bad_seconds, lambda c, bad: AgentCoordinator(c.memory, "team", active_seconds=bad)),
    Case("AgentCoordinator retention_seconds", bad_seconds, lambda c, bad: AgentCoordinator(c.memory, "team", retention_seconds=bad)),
    Case("AgentCoordinator credentials", bad_credentials, lambda c, bad: AgentCoordinator(c.memory, "team", credentials=bad)),
    Case("register_agent agent", bad_ids, lambda c, bad: c.team.register_agent(bad, ["review"])),
    Case("register_agent capabilities", st.one_of(st.integers(), st.none(), objects, st.just({"review": 1}), st.just(b"review"),
                                                  st.lists(bad_text | blank, min_size=1, max_size=2)),
         lambda c, bad: c.team.register_agent("worker", bad)),
    Case("heartbeat agent", bad_ids, lambda c, bad: c.team.heartbeat(bad)),
    Case("get_capabilities agent", bad_ids, lambda c, bad: c.team.get_capabilities(bad)),
    Case("add_task object", st.one_of(not_a_mapping, st.just({"task_id": "t9", "task_type": "review"})), lambda c, bad: c.team.add_task(bad)),
    Case("add_task priority changed", st.one_of(st.integers().filter(lambda n: not 0 <= n <= 1000), st.floats(), st.booleans(),
                                                st.text(max_size=2), st.sampled_from(HUGE)), lambda c, bad: c.team.add_task(_task(priority=bad))),
    Case("add_task description changed", bad_free_text, lambda c, bad: c.team.add_task(_task(description=bad))),
    Case("add_task context changed", st.one_of(not_a_mapping, bad_values.map(lambda v: {"k": v})), lambda c, bad: c.team.add_task(_task(context=bad))),
    Case("add_task ids changed", bad_ids, lambda c, bad: c.team.add_task(_task(task_type=bad))),
    Case("AgentTask status", st.one_of(st.text(max_size=5), st.integers(), st.none()), lambda c, bad: AgentTask("t9", "review", status=bad)),
    Case("AgentTask attempts", st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(), st.text(max_size=2)),
         lambda c, bad: AgentTask("t9", "review", attempts=bad)),
    Case("claim_task agent", bad_ids, lambda c, bad: c.team.claim_task(bad, "review")),
    Case("claim_task type", bad_ids, lambda c, bad: c.team.claim_task("worker", bad)),
    Case("claim_tasks count", st.one_of(st.integers().filter(lambda n: not 1 <= n <= 1000), st.booleans(), st.floats(), st.text(max_size=2)),
         lambda c, bad: c.team.claim_tasks("worker", "review", bad)),
    Case("complete_task id", bad_ids, lambda c, bad: c.team.complete_task(bad, {}, agent_id="worker")),
    Case("complete_task result", bad_values, lambda c, bad: c.team.complete_task("t2", bad, agent_id="worker")),
    Case("complete_task agent", bad_ids, lambda c, bad: c.team.complete_task("t2", {}, agent_id=bad)),
    Case("get_result id", bad_ids, lambda c, bad: c.team.get_result(bad)),
    Case("requeue_expired type", bad_ids, lambda c, bad: c.team.requeue_expired(bad)),
    Case("get_pending_tasks type", bad_ids, lambda c, bad: c.team.get_pending_tasks(bad)),
    Case("broadcast type", bad_signal_types, lambda c, bad: c.team.broadcast(bad, 1)),
    Case("broadcast data", bad_values, lambda c, bad: c.team.broadcast("note", bad)),
    # TeamSession
    Case("TeamSession memory", not_a_memory, lambda c, bad: TeamSession(bad, "room")),
    Case("TeamSession session_id", bad_ids, lambda c, bad: TeamSession(c.memory, bad)),
    Case("TeamSession purpose", st.one_of(bad_text, st.just(4097).map(lambda n: "p" * n)), lambda c, bad: TeamSession(c.memory, "room", bad)),
    Case("TeamSession ttl", bad_seconds, lambda c, bad: TeamSession(c.memory, "room", "p", ttl=bad)),
    Case("TeamSession credentials", bad_credentials, lambda c, bad: TeamSession(c.memory, "room", credentials=bad)),
    Case("add_agent agent", bad_ids, lambda c, bad: c.room.add_agent(bad)),
    Case("share key", bad_ids, lambda c, bad: c.room.share(bad, 1)),
    Case("share value", bad_values, lambda c, bad: c.room.share("scope", bad)),
    Case("session get key", bad_ids, lambda c, bad: c.room.get(bad)),
    Case("session signal type", bad_signal_types, lambda c, bad: c.room.signal(bad, 1)),
    Case("session signal data", bad_values, lambda c, bad: c.room.signal("note", bad)),
    # AgentWorkspace
    Case("AgentWorkspace user_id", bad_ids, lambda c, bad: AgentWorkspace(bad, short_term_memory=c.memory)),
    Case("AgentWorkspace memory", not_a_memory, lambda c, bad: AgentWorkspace("me", short_term_memory=bad)),
    Case("AgentWorkspace access_tier", bad_tiers, lambda c, bad: AgentWorkspace("me", short_term_memory=c.memory, access_tier=bad)),
    Case("AgentWorkspace target_level", st.one_of(st.integers().filter(lambda n: not 1 <= n <= 5), st.floats(), st.text(max_size=2), st.booleans()),
         lambda c, bad: AgentWorkspace("me", short_term_memory=c.memory, target_level=bad)),
    Case("AgentWorkspace session_id", bad_ids, lambda c, bad: AgentWorkspace("me", short_term_memory=c.memory, session_id=bad)),
    Case("workspace stash ttl", bad_seconds, lambda c, bad: c.worker.stash("notes", 2, ttl=bad)),
    Case("workspace receive timeout", bad_waits, lambda c, bad: c.worker.receive_signals(timeout=bad)),
    Case("workspace stage_pattern", not_a_mapping, lambda c, bad: c.worker.stage_pattern(bad)),
    Case("workspace record_conflict", not_a_mapping, lambda c, bad: c.worker.record_conflict(bad)),
    Case("workspace retrieve key", bad_ids, lambda c, bad: c.worker.retrieve(bad)),
    Case("workspace send_signal type", bad_signal_types, lambda c, bad: c.worker.send_signal(bad)),
    Case("workspace get_staged_patterns", st.just(None), lambda c, bad: AgentWorkspace("me", c.memory, access_tier=7).get_staged_patterns()),
    Case("workspace promote_pattern id", bad_ids, lambda c, bad: c.boss.promote_pattern(bad)),
    Case("workspace reject_pattern reason", st.one_of(bad_text, blank), lambda c, bad: c.boss.reject_pattern("p1", bad)),
    Case("workspace get_conflict id", bad_ids, lambda c, bad: c.worker.get_conflict(bad)),
    Case("workspace resolve_conflict strategy", st.one_of(not_a_str, st.sampled_from(["", "coin_flip", "Weighted"])),
         lambda c, bad: c.boss.resolve_conflict("c1", bad)),
    Case("workspace persist_collaboration_state", bad_fractions, lambda c, bad: _persist(c, trust_level=bad)),
    Case("workspace restore_collaboration_state session", bad_ids, lambda c, bad: c.worker.restore_collaboration_state(bad)),
    Case("workspace find_patterns", bad_text, lambda c, bad: c.worker.find_patterns(name=bad)),
    Case("workspace collaboration_state", not_a_mapping, lambda c, bad: (setattr(c.boss, "collaboration_state", bad),
                                                                          c.boss.persist_collaboration_state())),
]


@pytest.fixture
def seeded(make_memory, tmp_path) -> SimpleNamespace:
    memory = make_memory(clock=FakeClock())  # no lease lapses and nothing ages while examples run
    ctx = seed(memory, str(tmp_path / "data"))
    ctx.before = (stored(memory), observed(ctx))
    return ctx


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@PROPERTY
@given(data=st.data())
def test_bad_input_is_refused_with_a_typed_error_and_changes_nothing(seeded, case, data):
    bad = data.draw(case.bad, label=case.name)

    with pytest.raises(case.error):
        case.call(seeded, bad)

    assert (stored(seeded.memory), observed(seeded)) == seeded.before


EDGES = [(bad_seconds, SECONDS_EDGES), (bad_waits, WAIT_EDGES)]


@pytest.mark.parametrize("case", [case for case in CASES if any(case.bad is strategy for strategy, _ in EDGES)], ids=lambda case: case.name)
def test_each_value_a_duration_most_likely_gets_wrong_is_refused_and_changes_nothing(seeded, case):
    """Zero, negatives, just above the limit, inf, NaN, ints beyond a float, bools and strings, one by one."""
    (edges,) = [edges for strategy, edges in EDGES if case.bad is strategy]
    for bad in edges:
        with pytest.raises(InvalidInputError, match=r"ttl|seconds|timeout"):
            case.call(seeded, bad)
        assert (stored(seeded.memory), observed(seeded)) == seeded.before, validation.shown(bad)


PLUMBING = {"task_queue", "resolve_credentials"}  # the feature modules' shared parts


def test_the_cases_cover_every_public_call():
    """Each public method that takes an argument has a case named after it (``<method> ...``,
    ``workspace <method> ...``, ``session <method> ...`` or ``PatternLibrary.<method>``)."""
    called = {case.name.removeprefix("workspace ").removeprefix("session ").removeprefix("PatternLibrary.").split()[0]
              for case in CASES}
    for cls in (RedisShortTermMemory, AgentCoordinator, TeamSession, AgentWorkspace, PatternLibrary):
        methods = {name for name, member in vars(cls).items() if not name.startswith("_") and callable(member)
                   and member.__code__.co_argcount > 1} - PLUMBING
        assert methods <= called, (cls.__name__, sorted(methods - called))
    constructors = {case.name.split()[0] for case in CASES}
    assert {"memory", "AgentCoordinator", "TeamSession", "AgentWorkspace", "AgentCredentials", "AgentTask", "StagedPattern",
            "ConflictContext", "PatternLibrary", "get_redis_memory", "get_railway_redis", "check_redis_connection"} <= constructors


@pytest.mark.parametrize("url", ["", "redis://\ud800", "redis://127.0.0.1:notaport", "redis://127.0.0.1:99999", "not a url"])
def test_check_redis_connection_answers_false_for_a_url_nothing_can_reach(url):
    assert check_redis_connection(url) is False
    assert check_redis_connection(environ={"REDIS_URL": url}) is False
