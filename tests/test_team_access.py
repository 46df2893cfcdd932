"""Every access tier on every guarded operation: allowed from the documented tier up, refused
below it with a PermissionError that names the tier needed, and a refused write changes nothing."""

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
)
from team_support import engine, make_memory, memory, team_prefix  # noqa: F401

O, C, V, S = AccessTier.OBSERVER, AccessTier.CONTRIBUTOR, AccessTier.VALIDATOR, AccessTier.STEWARD


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
    team.claim_task("me", "job")
    team.claim_task("me", "job")


def me(memory, tier):
    return AgentWorkspace("me", short_term_memory=memory, access_tier=tier)


def team(memory, tier):
    return AgentCoordinator(memory, "team", credentials=AgentCredentials("me", tier))


def session(memory, tier):
    return TeamSession(memory, "room", "p", credentials=AgentCredentials("me", tier))


OPERATIONS = {
    # workspace
    "retrieve own": (O, lambda m, t: me(m, t).retrieve("notes")),
    "retrieve another agent's": (C, lambda m, t: me(m, t).retrieve("notes", agent_id="other")),
    "stash": (C, lambda m, t: me(m, t).stash("k", 1)),
    "send_signal": (C, lambda m, t: me(m, t).send_signal("s", 1)),
    "receive_signals": (O, lambda m, t: me(m, t).receive_signals()),
    "stage_pattern": (C, lambda m, t: me(m, t).stage_pattern(StagedPattern("mine", "me", "t", "n", "d"))),
    "stage in another's name": (V, lambda m, t: me(m, t).stage_pattern(StagedPattern("theirs", "other", "t", "n", "d"))),
    "get_staged_patterns": (O, lambda m, t: me(m, t).get_staged_patterns()),
    "promote_pattern": (V, lambda m, t: me(m, t).promote_pattern("p1")),
    "reject_pattern": (V, lambda m, t: me(m, t).reject_pattern("p2", "no")),
    "find_patterns": (O, lambda m, t: me(m, t).find_patterns()),
    "record_conflict": (C, lambda m, t: me(m, t).record_conflict(ConflictContext("c2", {"a": {"position": 1}, "b": {"position": 2}}))),
    "get_conflict": (O, lambda m, t: me(m, t).get_conflict("c1")),
    "resolve_conflict": (V, lambda m, t: me(m, t).resolve_conflict("c1")),
    "persist_collaboration_state": (C, lambda m, t: me(m, t).persist_collaboration_state()),
    "restore_collaboration_state": (O, lambda m, t: me(m, t).restore_collaboration_state()),
    # coordinator
    "register_agent": (S, lambda m, t: team(m, t).register_agent("x", ["y"])),
    "heartbeat": (C, lambda m, t: team(m, t).heartbeat("me")),
    "get_active_agents": (O, lambda m, t: team(m, t).get_active_agents()),
    "add_task": (C, lambda m, t: team(m, t).add_task(AgentTask("t9", "job"))),
    "claim_task": (C, lambda m, t: team(m, t).claim_task("me", "job")),
    "complete_task": (C, lambda m, t: team(m, t).complete_task("t1", {}, agent_id="me")),
    "complete_task for the claimer": (S, lambda m, t: team(m, t).complete_task("t2", {})),
    "get_pending_tasks": (O, lambda m, t: team(m, t).get_pending_tasks()),
    "aggregate_results": (O, lambda m, t: team(m, t).aggregate_results()),
    "get_result": (O, lambda m, t: team(m, t).get_result("t1")),
    "broadcast": (C, lambda m, t: team(m, t).broadcast("s", 1)),
    # team session
    "open a session": (O, lambda m, t: session(m, t)),
    "add_agent": (C, lambda m, t: session(m, S).add_agent("x") and session(m, t).add_agent("me")),
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
    before = _snapshot(memory)
    with pytest.raises(AccessDeniedError) as caught:
        call(memory, tier)
    assert isinstance(caught.value, PermissionError)
    needed = caught.value.required  # the first gate the caller fails: above its tier, at most the operation's
    assert tier < needed <= required and needed.name in str(caught.value) and tier.name in str(caught.value)
    assert _snapshot(memory) == before


def _snapshot(memory):
    """Every key under the test's prefix with its value (cursors and session renewals aside)."""
    found = {}
    for key in memory.client.scan_iter(match=f"{memory.keys.root}*", count=1000):
        kind = memory.client.type(key)
        if b":cursor:" in key or b"{s:" in key:
            continue
        found[key] = {b"string": memory.client.get, b"hash": memory.client.hgetall, b"zset": lambda k: memory.client.zrange(k, 0, -1),
                      b"set": memory.client.smembers, b"stream": memory.client.xlen}[kind](key)
    return found


def test_credentials_report_what_they_allow():
    observer, validator = AgentCredentials("o", O), AgentCredentials("v", V)
    assert observer.can_read() and not observer.can_stage() and not observer.can_validate()
    assert validator.can_stage() and validator.can_validate() and not validator.can_administer()
    assert f"{validator.tier}" == "VALIDATOR" and AgentCredentials("s", 4).tier is S
