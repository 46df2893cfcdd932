"""Every access tier on every guarded operation: allowed from the documented tier up, refused
below it with a PermissionError that names the tier needed, and a refused write changes nothing.
An OBSERVER reads what a dashboard needs and writes nothing, renewals and session creation included."""

from __future__ import annotations

import pytest

from memory import (
    AccessDeniedError,
    AccessTier,
    AgentCoordinator,
    AgentCredentials,
    AgentTask,
    AgentWorkspace,
    ConflictContext,
    StagedPattern,
    TeamSession,
    TTLStrategy,
)
from support import FakeClock
from team_support import stored

O, C, V, S = AccessTier.OBSERVER, AccessTier.CONTRIBUTOR, AccessTier.VALIDATOR, AccessTier.STEWARD  # noqa: E741 - the tables' one-letter tiers


def seeded(memory):
    """Something for every operation to act on, written by a steward."""
    boss = AgentWorkspace("boss", short_term_memory=memory, access_tier=S)
    other = AgentWorkspace("other", short_term_memory=memory, access_tier=C)
    other.stash("notes", 1)
    other.stage_pattern(StagedPattern("p1", "other", "t", "n", "d"))
    other.stage_pattern(StagedPattern("p2", "other", "t", "n", "d"))
    boss.record_conflict(ConflictContext("c1", {"a": {"position": 1}, "b": {"position": 2}}))
    team = AgentCoordinator(memory, "team")
    team.add_task(AgentTask("t1", "job"))
    team.add_task(AgentTask("t2", "job"))
    team.add_task(AgentTask("t3", "job"))
    team.claim_task("me", "job")
    team.claim_task("me", "job")
    team.claim_task("other", "job")
    room = TeamSession(memory, "room", "p", credentials=AgentCredentials("boss", S))
    room.add_agent("x")
    room.share("k", 1)


def me(memory, tier):
    return AgentWorkspace("me", short_term_memory=memory, access_tier=tier)


def team(memory, tier):
    return AgentCoordinator(memory, "team", credentials=AgentCredentials("me", tier))


def session(memory, tier):
    return TeamSession(memory, "room", "p", credentials=AgentCredentials("me", tier))


OPERATIONS = {
    # workspace
    "retrieve own": (O, lambda m, t: me(m, t).retrieve("notes")),
    "retrieve another agent's": (O, lambda m, t: me(m, t).retrieve("notes", agent_id="other")),
    "stash": (C, lambda m, t: me(m, t).stash("k", 1)),
    "send_signal": (C, lambda m, t: me(m, t).send_signal("s", 1)),
    "receive_signals": (O, lambda m, t: me(m, t).receive_signals()),
    "stage_pattern": (C, lambda m, t: me(m, t).stage_pattern(StagedPattern("mine", "me", "t", "n", "d"))),
    "stage in another's name": (V, lambda m, t: me(m, t).stage_pattern(StagedPattern("theirs", "other", "t", "n", "d"))),
    "get_staged_patterns": (O, lambda m, t: me(m, t).get_staged_patterns()),
    "promote_pattern": (V, lambda m, t: me(m, t).promote_pattern("p1")),
    "reject_pattern": (V, lambda m, t: me(m, t).reject_pattern("p2", "no")),
    "find_patterns": (O, lambda m, t: me(m, t).find_patterns()),
    "record_conflict": (C, lambda m, t: me(m, t).record_conflict(
        ConflictContext("c2", {"a": {"position": 1}, "b": {"position": 2}}))),
    "get_conflict": (O, lambda m, t: me(m, t).get_conflict("c1")),
    "resolve_conflict": (V, lambda m, t: me(m, t).resolve_conflict("c1")),
    "persist_collaboration_state": (C, lambda m, t: me(m, t).persist_collaboration_state()),
    "restore_collaboration_state": (O, lambda m, t: me(m, t).restore_collaboration_state()),
    # coordinator
    "register_agent": (S, lambda m, t: team(m, t).register_agent("x", ["y"])),
    "heartbeat": (C, lambda m, t: team(m, t).heartbeat("me")),
    "heartbeat in another agent's name": (S, lambda m, t: team(m, t).heartbeat("other")),
    "get_active_agents": (O, lambda m, t: team(m, t).get_active_agents()),
    "add_task": (C, lambda m, t: team(m, t).add_task(AgentTask("t9", "job"))),
    "claim_task": (C, lambda m, t: team(m, t).claim_task("me", "job")),
    "claim_task in another agent's name": (S, lambda m, t: team(m, t).claim_task("other", "job")),
    "claim_tasks": (C, lambda m, t: team(m, t).claim_tasks("me", "job", 2)),
    "requeue_expired": (C, lambda m, t: team(m, t).requeue_expired()),
    "get_capabilities": (O, lambda m, t: team(m, t).get_capabilities("me")),
    "complete_task": (C, lambda m, t: team(m, t).complete_task("t1", {}, agent_id="me")),
    "complete_task in the claimer's name": (S, lambda m, t: team(m, t).complete_task("t3", {}, agent_id="other")),
    "complete_task for the claimer": (S, lambda m, t: team(m, t).complete_task("t2", {})),
    "get_pending_tasks": (O, lambda m, t: team(m, t).get_pending_tasks()),
    "aggregate_results": (O, lambda m, t: team(m, t).aggregate_results()),
    "get_result": (O, lambda m, t: team(m, t).get_result("t1")),
    "broadcast": (C, lambda m, t: team(m, t).broadcast("s", 1)),
    # team session
    "open an existing session": (O, lambda m, t: session(m, t)),
    "create a session": (C, lambda m, t: TeamSession(m, "new-room", credentials=AgentCredentials("me", t))),
    "add_agent": (C, lambda m, t: session(m, t).add_agent("me")),
    "share": (C, lambda m, t: session(m, t).share("k", 1)),
    "get": (O, lambda m, t: session(m, t).get("k")),
    "get_info": (O, lambda m, t: session(m, t).get_info()),
    "session signal": (C, lambda m, t: session(m, t).signal("s", 1)),
}


@pytest.mark.parametrize("tier", list(AccessTier), ids=lambda tier: tier.name)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_operation_needs_its_tier(memory, operation, tier):
    required, call = OPERATIONS[operation]
    seeded(memory)
    if tier >= required:
        call(memory, tier)
        return
    before = stored(memory)
    with pytest.raises(AccessDeniedError) as caught:
        call(memory, tier)
    assert isinstance(caught.value, PermissionError)
    needed = caught.value.required  # the first gate the caller fails: above its tier, at most the operation's
    assert tier < needed <= required and needed.name in str(caught.value) and tier.name in str(caught.value)
    assert stored(memory) == before


def test_an_observer_opening_a_session_that_does_not_exist_is_told_creating_takes_a_contributor(memory):
    before = stored(memory)
    with pytest.raises(AccessDeniedError, match="creating team session 'nowhere'.*CONTRIBUTOR") as caught:
        TeamSession(memory, "nowhere", "p", credentials=AgentCredentials("dash", O), ttl=0.5)
    assert caught.value.required is C
    assert stored(memory) == before and memory.client.exists(*memory.keys.session("nowhere")) == 0


def test_an_observers_reads_renew_nothing_and_a_members_do(memory):
    room = TeamSession(memory, "room", "p", ttl=600)
    room.add_agent("a")
    room.share("k", 1)
    keys = memory.keys.session("room")
    dash = TeamSession(memory, "room", credentials=AgentCredentials("dash", O), ttl=10**7)
    assert dash.get("k") == 1 and dash.get_info()["shared_keys"] == ["k"]
    assert all(0 < memory.client.pttl(key) <= 600_000 for key in keys)  # still the creator's 600 s

    TeamSession(memory, "room").get("k")  # a member's read is activity
    assert all(600_000 < memory.client.pttl(key) <= TTLStrategy.SESSION * 1000 for key in keys)


def test_an_observer_reads_other_agents_working_memory_and_writes_nothing(make_memory):
    clock = FakeClock()
    memory = make_memory(clock=clock)
    AgentWorkspace("worker", short_term_memory=memory).stash("findings", {"critical": 0})
    board = AgentCoordinator(memory, "team", lease_seconds=10)
    board.add_task(AgentTask("t1", "job"))
    board.claim_task("crashed", "job")
    clock.advance(11)  # the lease lapsed: a contributor's listing would requeue it
    before = stored(memory)

    dash = AgentWorkspace("dash", short_term_memory=memory, access_tier=O)
    assert dash.retrieve("findings", agent_id="worker") == {"critical": 0}
    watcher = AgentCoordinator(memory, "team", credentials=dash.credentials)
    assert watcher.get_pending_tasks() == [] and watcher.aggregate_results()["total_completed"] == 0
    assert stored(memory) == before


def test_credentials_report_what_they_allow():
    observer, validator = AgentCredentials("o", O), AgentCredentials("v", V)
    assert observer.can_read() and not observer.can_stage() and not observer.can_validate()
    assert validator.can_stage() and validator.can_validate() and not validator.can_administer()
    assert f"{validator.tier}" == "VALIDATOR" and AgentCredentials("s", 4).tier is S


def test_an_observers_listing_of_staged_patterns_forgets_nothing_and_a_contributors_does(memory):
    worker = AgentWorkspace("worker", short_term_memory=memory)
    for pattern_id in ("gone", "kept"):
        worker.stage_pattern(StagedPattern(pattern_id, "worker", "t", "n", "d"))
    store = memory.patterns._store
    if hasattr(store, "_patterns"):  # the embedded engine: staged patterns live in the process
        body, _ = store._patterns.staged["gone"]
        store._patterns.staged["gone"] = (body, 0)  # as if its 24 hours were over
    else:
        memory.client.delete(memory.keys.staged("gone"))  # as Redis expires it
    before = stored(memory)

    assert [p.pattern_id for p in me(memory, O).get_staged_patterns()] == ["kept"]
    assert stored(memory) == before

    assert [p.pattern_id for p in me(memory, C).get_staged_patterns()] == ["kept"]
    assert stored(memory) != before  # the expired entry left the index
