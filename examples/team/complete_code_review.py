"""
Complete multi-agent code review with short-term memory.
Run this file to see all concepts in action.

The guide's "Complete Working Example"; the import lines differ (``empathy_os`` ->
``memory``, ``EmpathyOS`` is tiermem's ``AgentWorkspace``), and so that the examples can share
one deployment in any order and each runs again: the signal goes to this review's lead only, the
lead counts this review's staged pattern, and a task an earlier run added is skipped.
"""
import asyncio

from memory import AccessTier, AgentCoordinator, AgentTask, DuplicateTaskError, StagedPattern, TeamSession, get_redis_memory
from memory import AgentWorkspace as EmpathyOS


async def run_code_review():
    # Setup
    memory = get_redis_memory()
    print(f"Memory mode: {memory.get_stats()['mode']}")

    # Create team
    coordinator = AgentCoordinator(memory, team_id="code_review")
    coordinator.register_agent("security", ["security_review"])
    coordinator.register_agent("performance", ["performance_review"])

    # Create session
    session = TeamSession(memory, session_id="pr_100", purpose="Review PR #100")
    session.add_agent("security")
    session.add_agent("performance")
    session.add_agent("lead")

    # Share context
    session.share("scope", {
        "files": ["api.py", "auth.py"],
        "lines_changed": 200
    })

    # Add tasks
    try:
        coordinator.add_task(AgentTask(
            task_id="sec_review",
            task_type="security_review",
            description="Check for vulnerabilities",
            priority=9
        ))
    except DuplicateTaskError:  # run again: the team keeps the task
        pass

    # Create agents
    security_agent = EmpathyOS(
        "security",
        short_term_memory=memory,
        access_tier=AccessTier.CONTRIBUTOR
    )
    lead_agent = EmpathyOS(
        "lead",
        short_term_memory=memory,
        access_tier=AccessTier.VALIDATOR
    )

    # Security agent works
    security_agent.stash("findings", {
        "vulnerabilities": 0,
        "warnings": 1,
        "passed": True
    })

    security_agent.send_signal(
        "review_complete",
        {"agent": "security", "passed": True},
        target_agent="lead"
    )

    # Stage discovered pattern
    security_agent.stage_pattern(StagedPattern(
        pattern_id="pat_input_validation",
        agent_id="security",
        pattern_type="security",
        name="API Boundary Validation",
        description="Always validate input at API boundaries",
        confidence=0.90
    ))

    # Lead aggregates
    signals = lead_agent.receive_signals("review_complete")
    staged = [p for p in lead_agent.get_staged_patterns() if p.pattern_id == "pat_input_validation"]

    print("\nReview Complete!")
    print(f"Signals received: {len(signals)}")
    print(f"Patterns staged: {len(staged)}")
    print(f"Final keys in Redis: {memory.get_stats()['keys']}")

    # Persist state
    lead_agent.collaboration_state.successful_interventions += 1
    lead_agent.persist_collaboration_state()
    print("State persisted")


if __name__ == "__main__":
    asyncio.run(run_code_review())
