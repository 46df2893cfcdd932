"""Team sessions, working memory, conflicts and collaboration state."""

from __future__ import annotations

import pytest

from memory import AccessTier, AgentWorkspace, ConflictContext, TeamSession, TTLStrategy
from memory.team.errors import NotFoundError
from team_support import FORK, redis_memory, run_processes
from tiers.errors import InvalidInputError


# -- team sessions ----------------------------------------------------------------------------
def test_a_session_shares_context_and_reports_its_participants(memory):
    session = TeamSession(memory, session_id="pr_42", purpose="Review PR #42")
    for name in ("security_agent", "performance_agent", "lead_reviewer"):
        assert session.add_agent(name)
    assert not session.add_agent("lead_reviewer")
    session.share("pr_context", {"pr_number": 42, "files": ["auth.py"]})

    other_view = TeamSession(memory, session_id="pr_42", purpose="something else")
    info = other_view.get_info()

    assert other_view.get("pr_context") == {"pr_number": 42, "files": ["auth.py"]}
    assert other_view.get("missing", "fallback") == "fallback"
    assert info["participants"] == ["security_agent", "performance_agent", "lead_reviewer"]
    assert info["purpose"] == "Review PR #42" and info["session_id"] == "pr_42"  # not wiped by the second open
    assert isinstance(info["created_at"], float) and info["shared_keys"] == ["pr_context"]


def test_activity_renews_the_session_ttl(memory):
    session = TeamSession(memory, "s1", "p")
    session.share("k", 1)
    session.add_agent("a")
    keys = memory.keys.session("s1")
    for key in keys:
        memory.client.pexpire(key, 5_000)
    session.get("k")
    assert all(TTLStrategy.SESSION * 1000 - 5_000 < memory.client.pttl(key) <= TTLStrategy.SESSION * 1000 for key in keys)


def test_a_session_signal_reaches_each_participant(memory):
    session = TeamSession(memory, "s1", "p")
    session.add_agent("a")
    session.add_agent("b")
    session.signal("review_complete", {"agent": "a", "passed": True})
    for name in ("a", "b"):
        (signal,) = AgentWorkspace(name, short_term_memory=memory).receive_signals("review_complete")
        assert signal["data"] == {"agent": "a", "passed": True} and signal["target"] == name
    assert AgentWorkspace("outsider", short_term_memory=memory).receive_signals() == []


def _join(prefix, data_dir, worker, barrier, queue):
    memory = redis_memory(prefix, data_dir)
    barrier.wait()
    session = TeamSession(memory, "crowded", purpose=f"opened by {worker}")
    for n in range(25):
        session.add_agent(f"w{worker}-{n}")
    memory.close()
    queue.put(worker)


@pytest.mark.slow
def test_concurrent_joins_from_many_processes_are_all_kept(redis_prefix, tmp_path):
    barrier = FORK.Barrier(8)
    run_processes(_join, [(redis_prefix, str(tmp_path), w, barrier) for w in range(8)])
    memory = redis_memory(redis_prefix, str(tmp_path))
    info = TeamSession(memory, "crowded").get_info()
    assert sorted(info["participants"]) == sorted(f"w{w}-{n}" for w in range(8) for n in range(25))
    assert info["purpose"].startswith("opened by ")
    memory.close()


# -- working memory ---------------------------------------------------------------------------
def test_stash_and_retrieve_with_the_default_and_explicit_ttls(memory):
    agent = AgentWorkspace("code_reviewer", short_term_memory=memory)
    agent.stash("current_task", {"type": "code_review", "files": ["auth.py", "api.py"]})
    agent.stash("short", [1, 2, ...], ttl=90)
    agent.stash("strategy", "x", ttl=TTLStrategy.COORDINATION)

    assert agent.retrieve("current_task") == {"type": "code_review", "files": ["auth.py", "api.py"]}
    assert agent.retrieve("short") == [1, 2, ...]
    pttl = memory.client.pttl
    assert 3_595_000 < pttl(memory.keys.working("code_reviewer", "current_task")) <= 3_600_000
    assert 89_000 < pttl(memory.keys.working("code_reviewer", "short")) <= 90_000
    assert 295_000 < pttl(memory.keys.working("code_reviewer", "strategy")) <= 300_000
    assert agent.retrieve("never") is None


def test_agents_and_observers_read_each_other_but_observers_do_not_write(memory):
    security = AgentWorkspace("security_agent", short_term_memory=memory)
    security.stash("analysis_results", {"critical": 0})
    reviewer = AgentWorkspace("reviewer", short_term_memory=memory)
    monitor = AgentWorkspace("monitor", short_term_memory=memory, access_tier=AccessTier.OBSERVER)

    assert reviewer.retrieve("analysis_results", agent_id="security_agent") == {"critical": 0}
    assert reviewer.retrieve("analysis_results") is None  # its own key is its own
    assert monitor.retrieve("analysis_results", agent_id="security_agent") == {"critical": 0}  # a dashboard's view
    assert monitor.retrieve("anything") is None
    with pytest.raises(PermissionError, match="CONTRIBUTOR"):
        monitor.stash("analysis_results", {"critical": 9})
    assert security.retrieve("analysis_results") == {"critical": 0}


@pytest.mark.parametrize(
    "key, value, ttl",
    [("", 1, None), ("a b", 1, None), ("../etc/passwd\n", 1, None), ("k", object(), None), ("k", {1, 2}, None),
     ("k", 1, 0), ("k", 1, -5), ("k", 1, float("inf")), ("k", 1, "60"), ("k", b"x" * (1 << 20 + 1), None)],
)
def test_bad_stashes_are_refused_and_lose_nothing(memory, key, value, ttl):
    agent = AgentWorkspace("a", short_term_memory=memory)
    agent.stash("k", "kept")
    with pytest.raises(InvalidInputError):
        agent.stash(key, value, ttl=ttl)
    assert agent.retrieve("k") == "kept"


# -- conflicts --------------------------------------------------------------------------------
def conflict(conflict_id="c1"):
    return ConflictContext(
        conflict_id=conflict_id,
        positions={
            "security": {"position": "block the release", "confidence": 0.7, "weight": 2.0},
            "product": {"position": "ship now", "confidence": 0.9, "weight": 1.0},
        },
        interests={"security": ["no data leaks"], "product": ["deadline"]},
    )


@pytest.mark.parametrize("strategy, winner", [("highest_confidence", "product"), ("weighted", "security")])
def test_a_validator_resolves_a_conflict_by_a_strategy(memory, strategy, winner):
    AgentWorkspace("security", short_term_memory=memory).record_conflict(conflict())
    lead = AgentWorkspace("lead", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)

    resolved = lead.resolve_conflict("c1", strategy=strategy)

    assert resolved.resolved and resolved.resolution["winner"] == winner
    assert resolved.resolution["strategy"] == strategy and resolved.resolution["resolved_by"] == "lead"
    stored = lead.get_conflict("c1")
    assert stored.resolution == resolved.resolution and stored.interests["product"] == ["deadline"]
    assert lead.resolve_conflict("c1", strategy="weighted").resolution == resolved.resolution  # first one stands
    assert 7 * 86_400_000 - 10_000 < memory.client.pttl(memory.keys.conflict("c1")) <= 7 * 86_400_000


def test_conflict_errors(memory):
    lead = AgentWorkspace("lead", short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
    with pytest.raises(NotFoundError):
        lead.get_conflict("nope")
    with pytest.raises(InvalidInputError):
        ConflictContext("c", positions={"only": {"position": 1}})
    with pytest.raises(InvalidInputError):
        ConflictContext("c", positions={"a": {"position": 1, "confidence": 2}, "b": {"position": 2}})
    AgentWorkspace("a", short_term_memory=memory).record_conflict(conflict())
    with pytest.raises(InvalidInputError):
        lead.resolve_conflict("c1", strategy="coin_flip")
    with pytest.raises(PermissionError, match="VALIDATOR"):
        AgentWorkspace("a", short_term_memory=memory).resolve_conflict("c1")


# -- collaboration state ----------------------------------------------------------------------
def test_collaboration_state_restores_by_session_or_the_most_recent(memory):
    first = AgentWorkspace("long_running_agent", short_term_memory=memory)
    first.collaboration_state.trust_level = 0.85
    first.collaboration_state.successful_interventions = 15
    first.collaboration_state.failed_interventions = 2
    first.current_empathy_level = 4
    first.persist_collaboration_state()
    second = AgentWorkspace("long_running_agent", short_term_memory=memory)
    second.collaboration_state.trust_level = 0.6
    second.persist_collaboration_state()

    by_session = AgentWorkspace("long_running_agent", short_term_memory=memory)
    assert by_session.restore_collaboration_state(session_id=first.session_id)
    assert (by_session.collaboration_state.trust_level, by_session.current_empathy_level) == (0.85, 4)
    assert by_session.collaboration_state.failed_interventions == 2
    latest = AgentWorkspace("long_running_agent", short_term_memory=memory)
    assert latest.restore_collaboration_state() and latest.collaboration_state.trust_level == 0.6
    assert not AgentWorkspace("stranger", short_term_memory=memory).restore_collaboration_state()


def test_a_bad_collaboration_state_is_refused(memory):
    agent = AgentWorkspace("a", short_term_memory=memory)
    agent.collaboration_state.trust_level = 1.5
    with pytest.raises(InvalidInputError):
        agent.persist_collaboration_state()


def _persist(prefix, data_dir, queue):
    memory = redis_memory(prefix, data_dir)
    agent = AgentWorkspace("roamer", short_term_memory=memory)
    agent.collaboration_state.trust_level = 0.77
    agent.current_empathy_level = 5
    agent.persist_collaboration_state()
    memory.close()
    queue.put(agent.session_id)


@pytest.mark.slow
def test_collaboration_state_restores_in_another_process(redis_prefix, tmp_path):
    (session_id,) = run_processes(_persist, [(redis_prefix, str(tmp_path))])
    memory = redis_memory(redis_prefix, str(tmp_path))
    agent = AgentWorkspace("roamer", short_term_memory=memory)
    assert agent.restore_collaboration_state()
    assert (agent.collaboration_state.trust_level, agent.current_empathy_level) == (0.77, 5)
    assert memory.restore_collaboration_state(agent.credentials)[0] == session_id
    memory.close()
