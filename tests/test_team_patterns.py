"""Pattern staging, validation and the long-term pattern library."""

from __future__ import annotations

import pytest

from memory import AccessTier, AgentWorkspace, StagedPattern
from team_support import FORK, redis_memory, run_processes
from tiers.errors import InvalidInputError


def pattern(pattern_id="pat_1", agent_id="finder", **extra):
    fields = dict(pattern_type="optimization", name="Eager loading", description="avoid N+1", confidence=0.9)
    fields.update(extra)
    return StagedPattern(pattern_id=pattern_id, agent_id=agent_id, **fields)


def workspace(memory, name, tier):
    return AgentWorkspace(name, short_term_memory=memory, access_tier=tier)


@pytest.mark.parametrize(
    "bad",
    [dict(pattern_id=""), dict(agent_id=""), dict(pattern_id="a b"), dict(confidence=1.01), dict(confidence=-0.1),
     dict(confidence=float("nan")), dict(confidence="0.5"), dict(name=""), dict(pattern_type="  "),
     dict(context=["x"]), dict(code=3)],
)
def test_staged_pattern_validates_its_fields(bad):
    fields = dict(pattern_id="p", agent_id="a", pattern_type="t", name="n", description="d", confidence=0.5)
    fields.update(bad)
    with pytest.raises(InvalidInputError):
        StagedPattern(**fields)


def test_stage_list_and_promote_into_the_library(memory):
    finder = workspace(memory, "finder", AccessTier.CONTRIBUTOR)
    validator = workspace(memory, "architect", AccessTier.VALIDATOR)
    assert finder.stage_pattern(pattern(code="x = 1", context={"pr": 42}))
    assert finder.stage_pattern(pattern("pat_2", name="Other", pattern_type="security", confidence=0.4))

    staged = validator.get_staged_patterns()
    assert [(p.pattern_id, p.name, p.confidence, p.code, p.context) for p in staged] == [
        ("pat_1", "Eager loading", 0.9, "x = 1", {"pr": 42}),
        ("pat_2", "Other", 0.4, None, {}),
    ]

    promoted = validator.promote_pattern("pat_1")
    assert promoted and promoted.pattern_id == "pat_1" and promoted.decided_by == "architect"
    assert [p.pattern_id for p in validator.get_staged_patterns()] == ["pat_2"]
    (found,) = finder.find_patterns(pattern_type="optimization", name="Eager loading")
    assert (found.code, found.context, found.agent_id, found.status) == ("x = 1", {"pr": 42}, "finder", "promoted")
    assert finder.find_patterns(pattern_type="security") == []  # pat_2 is still staged
    assert not validator.promote_pattern("pat_1")  # already promoted
    assert not finder.stage_pattern(pattern())  # never rediscovered: the library has it
    assert [p.pattern_id for p in validator.get_staged_patterns()] == ["pat_2"]


def test_a_rejection_keeps_its_reason(memory):
    finder = workspace(memory, "finder", AccessTier.CONTRIBUTOR)
    validator = workspace(memory, "architect", AccessTier.VALIDATOR)
    finder.stage_pattern(pattern())

    assert validator.reject_pattern("pat_1", "confidence is from one PR only")

    decision = memory.pattern_library.get("pat_1")
    assert (decision.status, decision.reason, decision.decided_by) == ("rejected", "confidence is from one PR only", "architect")
    assert validator.get_staged_patterns() == [] and finder.find_patterns() == []
    assert finder.stage_pattern(pattern(confidence=0.95))  # improved, it may come back
    assert validator.promote_pattern("pat_1").confidence == 0.95
    with pytest.raises(InvalidInputError):
        validator.reject_pattern("pat_1", "")


def test_the_library_survives_a_restart_of_everything(make_memory, tmp_path):
    first = make_memory()
    workspace(first, "finder", AccessTier.CONTRIBUTOR).stage_pattern(pattern())
    workspace(first, "v", AccessTier.VALIDATOR).promote_pattern("pat_1")
    first.client.delete(first.keys.promoted("pat_1"))  # even if Redis forgot everything
    first.close()

    again = make_memory(key_prefix=first.keys.prefix)
    (found,) = AgentWorkspace("x", short_term_memory=again).find_patterns(name="Eager loading")
    assert found.pattern_id == "pat_1"


def test_staging_in_another_agents_name_needs_a_validator(memory):
    with pytest.raises(PermissionError, match="VALIDATOR"):
        workspace(memory, "mallory", AccessTier.CONTRIBUTOR).stage_pattern(pattern(agent_id="finder"))
    assert workspace(memory, "lead", AccessTier.VALIDATOR).stage_pattern(pattern(agent_id="finder"))


def test_stage_by_keyword_fields_on_the_memory(memory):
    assert memory.stage_pattern(pattern_id="sec_001", pattern_type="security", name="SQLi", description="bind", confidence=0.9)
    (staged,) = memory.get_staged_patterns()
    assert (staged.agent_id, staged.name) == ("default", "SQLi")


def test_a_promoter_that_died_after_writing_the_library_is_finished_by_the_next(memory):
    workspace(memory, "finder", AccessTier.CONTRIBUTOR).stage_pattern(pattern())
    library_pattern = pattern()
    memory.pattern_library.decide(library_pattern, "promoted", "ghost", 1.0, None)  # wrote the row, then died

    assert workspace(memory, "v", AccessTier.VALIDATOR).promote_pattern("pat_1") is None  # ghost won
    assert memory.get_staged_patterns() == []
    assert memory.pattern_library.get("pat_1").decided_by == "ghost"
    assert not workspace(memory, "finder", AccessTier.CONTRIBUTOR).stage_pattern(pattern())


def _promote(prefix, data_dir, validator, barrier, queue):
    memory = redis_memory(prefix, data_dir)
    me = AgentWorkspace(validator, short_term_memory=memory, access_tier=AccessTier.VALIDATOR)
    barrier.wait()
    result = me.promote_pattern("contested")
    memory.close()
    queue.put((validator, bool(result)))


@pytest.mark.slow
def test_of_concurrent_promoters_exactly_one_wins(redis_prefix, tmp_path):
    memory = redis_memory(redis_prefix, str(tmp_path))
    for _ in range(3):
        memory.client.delete(memory.keys.promoted("contested"))
        with memory.pattern_library.engine.begin() as conn:
            from tiers.coordination.library import patterns_table

            conn.execute(patterns_table.delete())
        memory.stage_pattern(pattern("contested", agent_id="default"))
        barrier = FORK.Barrier(6)
        outcomes = run_processes(_promote, [(redis_prefix, str(tmp_path), f"v{i}", barrier) for i in range(6)])
        winners = [name for name, won in outcomes if won]
        assert len(winners) == 1, outcomes
        assert memory.pattern_library.get("contested").decided_by == winners[0]
        assert memory.get_staged_patterns() == []
    memory.close()
