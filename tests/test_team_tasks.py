"""AgentCoordinator: priorities, atomic claims across processes, leases, completion, aggregation."""

from __future__ import annotations

import time

import pytest

from memory import AccessTier, AgentCoordinator, AgentCredentials, AgentTask, DuplicateTaskError, TaskOwnershipError
from memory.team.errors import NotFoundError
from support import FakeClock
from team_support import redis_memory, run_processes
from tiers.errors import InvalidInputError


def task(task_id: str, priority: int = 5, task_type: str = "review", **extra) -> AgentTask:
    return AgentTask(task_id=task_id, task_type=task_type, description=f"do {task_id}", priority=priority, **extra)


def test_claims_come_by_priority_then_in_the_order_added(memory):
    team = AgentCoordinator(memory, "t1")
    for task_id, priority in [("low", 1), ("high-a", 9), ("mid", 5), ("high-b", 9), ("other-type", 10)]:
        team.add_task(task(task_id, priority, task_type="other" if task_id == "other-type" else "review"))

    claimed = [team.claim_task("agent-1", "review") for _ in range(5)]

    assert [t.task_id if t else None for t in claimed] == ["high-a", "high-b", "mid", "low", None]
    assert all(t.status == "claimed" and t.assigned_to == "agent-1" for t in claimed[:4])
    assert claimed[0].description == "do high-a" and claimed[0].priority == 9
    assert [t.task_id for t in team.get_pending_tasks()] == ["other-type"]


def test_a_queued_task_comes_back_with_its_context(memory):
    team = AgentCoordinator(memory, "t1")
    team.add_task(task("ctx", context={"files": ["a.py", "b.py"], "depth": 2}))

    assert [t.task_id for t in team.get_pending_tasks("review")] == ["ctx"]
    claimed = team.claim_task("a", "review")
    assert claimed.context == {"files": ["a.py", "b.py"], "depth": 2} and claimed.attempts == 1


def test_complete_records_the_result_and_aggregates(memory):
    team = AgentCoordinator(memory, "t1")
    for i in range(3):
        team.add_task(task(f"r{i}"))
    team.add_task(task("s0", task_type="style"))
    for agent, kind in [("a", "review"), ("b", "review"), ("a", "review"), ("b", "style")]:
        claimed = team.claim_task(agent, kind)
        assert team.complete_task(claimed.task_id, {"by": agent}, agent_id=agent)

    results = team.aggregate_results()

    assert results == {"total_completed": 4, "by_agent": {"a": 2, "b": 2}, "by_type": {"review": 3, "style": 1}}
    assert team.get_result("r1") ["result"] == {"by": "b"} and team.get_result("r1")["agent_id"] == "b"
    assert team.get_result("r9") is None


def test_only_the_claimer_completes_and_only_once(memory):
    team = AgentCoordinator(memory, "t1")
    team.add_task(task("x"))
    with pytest.raises(TaskOwnershipError, match="not claimed"):
        team.complete_task("x", {}, agent_id="a")
    team.claim_task("a", "review")

    with pytest.raises(TaskOwnershipError, match="claimed by 'a'"):
        team.complete_task("x", {"stolen": True}, agent_id="b")
    assert team.complete_task("x", {"ok": True}, agent_id="a")
    with pytest.raises(TaskOwnershipError):
        team.complete_task("x", {"again": True}, agent_id="a")
    with pytest.raises(NotFoundError):
        team.complete_task("nope", {}, agent_id="a")
    assert team.get_result("x")["result"] == {"ok": True}
    assert team.aggregate_results()["total_completed"] == 1


def test_the_coordinator_completes_on_the_claimers_behalf(memory):
    team = AgentCoordinator(memory, "t1")
    team.add_task(task("x"))
    team.claim_task("worker", "review")

    assert team.complete_task("x", {"done": 1})

    assert team.get_result("x")["agent_id"] == "worker"
    assert team.aggregate_results()["by_agent"] == {"worker": 1}


def test_a_task_id_is_added_once(memory):
    team = AgentCoordinator(memory, "t1")
    team.add_task(task("x", priority=3))
    with pytest.raises(DuplicateTaskError):
        team.add_task(task("x", priority=9))
    assert [(t.task_id, t.priority) for t in team.get_pending_tasks()] == [("x", 3)]


@pytest.mark.parametrize(
    "bad",
    [dict(task_id=""), dict(task_id="a b"), dict(priority=1001), dict(priority=-1), dict(priority=2.5),
     dict(priority=True), dict(task_type=""), dict(context=[1])],
)
def test_bad_tasks_are_refused_with_a_clear_error(bad):
    fields = dict(task_id="ok", task_type="review", description="d", priority=5, **{})
    fields.update(bad)
    with pytest.raises(InvalidInputError):
        AgentTask(**fields)


def test_a_lease_lapses_when_the_claimer_stops_heartbeating(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", lease_seconds=30)
    team.add_task(task("x"))
    assert team.claim_task("crashed", "review").task_id == "x"
    clock.advance(29)
    assert team.claim_task("other", "review") is None  # still leased

    clock.advance(2)
    reclaimed = team.claim_task("other", "review")

    assert reclaimed.task_id == "x" and reclaimed.attempts == 2
    with pytest.raises(TaskOwnershipError):
        team.complete_task("x", {"late": True}, agent_id="crashed")
    assert team.complete_task("x", {"ok": True}, agent_id="other")
    assert team.aggregate_results()["by_agent"] == {"other": 1}


def test_heartbeats_keep_a_lease(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", lease_seconds=30)
    team.add_task(task("x"))
    team.claim_task("worker", "review")
    for _ in range(5):
        clock.advance(20)
        team.heartbeat("worker")
        assert team.claim_task("thief", "review") is None

    clock.advance(31)
    assert team.claim_task("thief", "review").task_id == "x"


def test_a_short_lease_lapses_on_time_beside_long_ones(make_memory):
    """Claims skip the lease scan until the earliest lease can have lapsed; a coordinator with a
    shorter lease than the others moves that moment earlier."""
    clock = FakeClock()
    memory = make_memory(clock=clock)
    patient, hasty = (AgentCoordinator(memory, "t1", lease_seconds=s) for s in (60, 1))
    for name in ("long", "short", "spare"):
        patient.add_task(task(name, priority={"long": 9, "short": 8, "spare": 1}[name]))
    assert patient.claim_task("slow", "review").task_id == "long"  # no lease ends before 60 s from now
    assert hasty.claim_task("crashed", "review").task_id == "short"  # ... but this one after 1 s
    clock.advance(2)

    reclaimed = hasty.claim_task("other", "review")

    assert reclaimed.task_id == "short" and reclaimed.attempts == 2
    assert patient.claim_task("third", "review").task_id == "spare"  # "long" is still leased


def test_a_claim_records_the_claimers_heartbeat_once_a_second(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", active_seconds=10)
    for name in "abc":
        team.add_task(task(name))
    team.claim_task("w", "review")  # seen now
    clock.advance(0.5)
    team.claim_task("w", "review")  # within the second: not written again
    clock.advance(9.7)
    assert team.get_active_agents() == []  # last seen 10.2 s ago
    team.claim_task("w", "review")
    assert team.get_active_agents() == ["w"]


def test_pending_tasks_include_lapsed_leases(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", lease_seconds=10)
    team.add_task(task("x"))
    team.claim_task("w", "review")
    assert team.get_pending_tasks() == []
    clock.advance(11)
    assert [t.task_id for t in team.get_pending_tasks()] == ["x"]


def test_active_agents_are_those_seen_recently(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", active_seconds=300)
    team.register_agent("old", ["a"])
    clock.advance(200)
    team.register_agent("new", capabilities=["b", "c"])
    assert team.get_active_agents() == ["old", "new"]
    clock.advance(150)
    assert team.get_active_agents() == ["new"]
    team.heartbeat("old")
    assert sorted(team.get_active_agents()) == ["new", "old"]
    assert team.get_capabilities("new") == ["b", "c"]


def test_teams_are_separate(memory):
    one, two = AgentCoordinator(memory, "one"), AgentCoordinator(memory, "two")
    one.add_task(task("x"))
    assert two.claim_task("a", "review") is None
    two.add_task(task("x"))  # the same id in another team is another task
    assert one.claim_task("a", "review").task_id == "x"


def test_the_coordinator_acting_with_lower_credentials_is_checked(memory):
    observer = AgentCoordinator(memory, "t1", credentials=AgentCredentials("dash", AccessTier.OBSERVER))
    assert observer.get_pending_tasks() == [] and observer.aggregate_results()["total_completed"] == 0
    with pytest.raises(PermissionError, match="CONTRIBUTOR"):
        observer.add_task(task("x"))


# -- many processes ---------------------------------------------------------------------------
def _claim_until_empty(prefix, data_dir, worker, queue):
    memory = redis_memory(prefix, data_dir)
    team = AgentCoordinator(memory, "load")
    agent = f"worker-{worker}"
    done = []
    while (claimed := team.claim_task(agent, "job")) is not None:
        team.complete_task(claimed.task_id, {"n": claimed.context["n"]}, agent_id=agent)
        done.append(claimed.task_id)
    memory.close()
    queue.put(done)


@pytest.mark.slow
def test_eight_processes_complete_5000_tasks_each_exactly_once(redis_prefix, tmp_path):
    memory = redis_memory(redis_prefix, str(tmp_path))
    team = AgentCoordinator(memory, "load")
    ids = [f"job-{i:05d}" for i in range(5000)]
    pipe_tasks = [AgentTask(task_id=i, task_type="job", priority=n % 10, context={"n": n}) for n, i in enumerate(ids)]
    for t in pipe_tasks:
        team.add_task(t)

    started = time.perf_counter()
    per_worker = run_processes(_claim_until_empty, [(redis_prefix, str(tmp_path), w) for w in range(8)])
    elapsed = time.perf_counter() - started

    completed = [task_id for done in per_worker for task_id in done]
    assert len(completed) == 5000 and sorted(completed) == ids  # each once, none lost
    assert sum(1 for done in per_worker if done) >= 2  # the work was really shared
    results = team.aggregate_results()
    assert results["total_completed"] == 5000 and sum(results["by_agent"].values()) == 5000
    assert team.get_pending_tasks() == []
    assert memory.client.hlen(memory.keys.team("load").claims) == 0
    print(f"8 processes: 5000 claims + completions in {elapsed:.2f}s")
    memory.close()


def _claim_one_and_die(prefix, data_dir, queue):
    memory = redis_memory(prefix, data_dir, clock=lambda: 1_800_000_000.0)
    team = AgentCoordinator(memory, "crash", lease_seconds=30)
    queue.put(team.claim_task("doomed", "job").task_id)
    queue.close()
    queue.join_thread()  # the message is out; now vanish
    import os

    os._exit(0)  # no clean-up, no completion: as if the agent crashed


@pytest.mark.slow
def test_a_task_held_by_a_crashed_process_is_reclaimed_by_another(redis_prefix, tmp_path):
    clock = FakeClock(1_800_000_000.0)
    memory = redis_memory(redis_prefix, str(tmp_path), clock=clock)
    team = AgentCoordinator(memory, "crash", lease_seconds=30)
    team.add_task(AgentTask(task_id="only", task_type="job"))

    (held,) = run_processes(_claim_one_and_die, [(redis_prefix, str(tmp_path))])
    assert held == "only" and team.claim_task("survivor", "job") is None
    clock.advance(31)

    assert team.claim_task("survivor", "job").task_id == "only"
    assert team.complete_task("only", {"ok": True}, agent_id="survivor")
    memory.close()


def test_claim_tasks_takes_a_batch_in_queue_order(memory):
    team = AgentCoordinator(memory, "t1")
    for i in range(5):
        team.add_task(task(f"x{i}", priority=i))
    batch = team.claim_tasks("w", "review", 3)
    assert [t.task_id for t in batch] == ["x4", "x3", "x2"] and {t.assigned_to for t in batch} == {"w"}
    assert [t.task_id for t in team.claim_tasks("w", "review", 10)] == ["x1", "x0"]
    assert team.claim_tasks("w", "review", 10) == []
    with pytest.raises(InvalidInputError):
        team.claim_tasks("w", "review", 0)


# -- retention of completed tasks -------------------------------------------------------------
def kept(team: AgentCoordinator) -> dict[str, int]:
    """How many completed tasks, bodies, attempts and results the team's queue still holds."""
    queue = team._queue
    if hasattr(queue, "_team"):  # the embedded engine keeps them in the process
        state = queue._team
        return {"done": len(state.done), "tasks": len(state.bodies), "attempts": len(state.attempts),
                "results": len(state.results)}
    client, keys = team.memory.client, team.keys
    return {"done": client.zcard(keys.done), "tasks": client.hlen(keys.tasks), "attempts": client.hlen(keys.attempts),
            "results": client.hlen(keys.results)}


def run_through(team: AgentCoordinator, ids: list[str], agent: str = "w") -> None:
    for task_id in ids:
        team.add_task(task(task_id))
    for claimed in team.claim_tasks(agent, "review", len(ids)):
        team.complete_task(claimed.task_id, {"id": claimed.task_id}, agent_id=agent)


def test_a_completed_task_is_kept_for_its_retention_then_forgotten(make_memory):
    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", retention_seconds=100)
    run_through(team, ["x"])
    clock.advance(99.9)
    assert team.get_result("x")["result"] == {"id": "x"}
    with pytest.raises(DuplicateTaskError):
        team.add_task(task("x"))

    clock.advance(0.1)  # the retention ends: x reads as forgotten before any call drops it

    assert team.get_result("x") is None
    with pytest.raises(NotFoundError):
        team.complete_task("x", {}, agent_id="w")
    assert team.aggregate_results() == {"total_completed": 1, "by_agent": {"w": 1}, "by_type": {"review": 1}}
    team.add_task(task("x", priority=7))  # the id is free: a new task
    again = team.claim_task("v", "review")
    assert (again.task_id, again.priority, again.attempts) == ("x", 7, 1)
    assert team.get_result("x") is None and team.complete_task("x", "second", agent_id="v")
    assert team.get_result("x")["result"] == "second" and team.aggregate_results()["total_completed"] == 2


def test_each_claim_and_completion_forgets_a_few_of_the_oldest(make_memory):
    from tiers.coordination.tasks import FORGET_PER_CALL

    clock = FakeClock()
    team = AgentCoordinator(make_memory(clock=clock), "t1", retention_seconds=60)
    run_through(team, [f"old-{n}" for n in range(100)])
    assert kept(team) == {"done": 100, "tasks": 100, "attempts": 100, "results": 100}
    clock.advance(61)

    team.add_task(task("new"))
    assert kept(team)["done"] == 100  # adding forgets only its own id, if that one is past retention
    team.claim_task("w", "review")
    assert kept(team)["done"] == 100 - FORGET_PER_CALL
    team.complete_task("new", None, agent_id="w")
    assert kept(team) == dict.fromkeys(("done", "tasks", "attempts", "results"), 100 - 2 * FORGET_PER_CALL + 1)
    assert team.get_result(f"old-{2 * FORGET_PER_CALL}") is None  # not dropped yet, but forgotten all the same
    assert team.aggregate_results()["total_completed"] == 101


@pytest.mark.slow
def test_ten_thousand_completed_tasks_past_retention_leave_the_queue_bounded(make_memory, redis_engine):
    """A team completing 10,000 tasks at a steady pace keeps about one retention's worth (600 here)."""
    clock = FakeClock()
    memory = make_memory(clock=clock)
    team = AgentCoordinator(memory, "busy", retention_seconds=60, lease_seconds=600)
    used = []
    for batch in range(100):
        run_through(team, [f"job-{batch}-{n}" for n in range(100)])
        clock.advance(10)
        if redis_engine == "redis" and batch in (9, 99):
            used.append(sum(memory.client.memory_usage(key) or 0 for key in memory.client.scan_iter(match=f"{team.keys.root}*")))

    counts = kept(team)
    assert all(600 <= n <= 600 + 100 for n in counts.values()), counts
    assert team.aggregate_results()["total_completed"] == 10_000
    if redis_engine == "redis":
        assert used[1] < 1.5 * used[0] and used[1] < 1 << 20, used  # after 10,000 as after 1,000
    else:  # what the embedded engine snapshots is as bounded
        memory.close()
        reopened = make_memory()
        keys = reopened.keys.team("busy")
        assert all(600 <= n <= 700 for n in (reopened.client.hlen(keys.tasks), reopened.client.zcard(keys.done))), keys
