"""The team walkthroughs (examples/team/*.py) run as a user would run them: a fresh process, a
fresh directory, on the real Redis and on the embedded default. Also the public names."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

import memory
import memory.team
from support import REDIS_ENGINES, TEST_REDIS_URL, real_redis
from team_support import delete_prefix

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples" / "team").glob("*.py"))
EXPECTED = {
    "guide_walkthrough.py": ["Has memory: True", "Security agent claimed: sec_001", "Total completed: 1",
                             "By agent: {'security_agent': 1}", "From code_reviewer: {'agent': 'security_agent'",
                             "Participants: ['security_agent', 'performance_agent', 'lead_reviewer']",
                             "Patterns awaiting validation: 1", "Trust level restored: 0.85", "Empathy level: 4",
                             "Can write: True", "Can validate: False"],
    "complete_code_review.py": ["Signals received: 1", "Patterns staged: 1", "State persisted"],
    "reference_examples.py": ["{'files': 10, 'issues': 3}", "Review: JWT Token Refresh (confidence: 0.85)",
                              "0.8", "Completed: 1", "Received 2 reviews"],
    "file_first.py": ["'file_session'", "Review: JWT Token Refresh (confidence: 0.85)", "Completed: 1", "Received 2 reviews"],
}


@contextmanager
def deployment(engine: str) -> Iterator[dict[str, str]]:
    """The environment of example runs that share one deployment: the test Redis under a key
    prefix of their own (deleted afterwards), or the embedded engine in the run's directory."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if engine != "redis":
        yield {**env, "REDIS_URL": ""}
        return
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield {**env, "REDIS_URL": TEST_REDIS_URL, "TIERMEM_KEY_PREFIX": prefix}
    finally:
        delete_prefix(client, prefix)
        client.close()


def run_example(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "examples" / "team" / name)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_example_has_expectations():
    assert sorted(path.name for path in EXAMPLES) == sorted(EXPECTED)


@pytest.mark.parametrize("engine", REDIS_ENGINES)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example, engine, tmp_path):
    with deployment(engine) as env:
        done = run_example(example.name, env, tmp_path)
    assert done.returncode == 0, done.stderr
    for line in EXPECTED[example.name]:
        assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
    if engine == "embedded" and example.name == "file_first.py":
        assert "'redis': False" in done.stdout and "embedded" in done.stdout


# Each example names its own teams, sessions and patterns and skips tasks an earlier run added, so
# they share one deployment (one data directory, or one Redis key prefix) in any order, twice.
SHARED_RUNS = ["reference_examples.py", "complete_code_review.py", "file_first.py", "file_first.py",
               "complete_code_review.py", "reference_examples.py"]


@pytest.mark.parametrize("engine", REDIS_ENGINES)
def test_examples_share_a_deployment_in_either_order_and_run_again(engine, tmp_path):
    with deployment(engine) as env:
        for name in SHARED_RUNS:
            done = run_example(name, env, tmp_path)
            assert done.returncode == 0, f"{name}: {done.stderr}"
            for line in EXPECTED[name]:
                assert line in done.stdout, f"{name}: {line!r} missing from:\n{done.stdout}"


# The guide's walkthrough owns its team, session and pattern; run again, it finds its tasks queued
# (done or not) and its pattern staged, so nothing new is claimed and the totals stay.
AGAIN = ["Has memory: True", "Already queued: sec_001", "Already queued: style_001", "Total completed: 1",
         "By agent: {'security_agent': 1}", "Patterns awaiting validation: 1", "Trust level restored: 0.85"]


@pytest.mark.parametrize("engine", REDIS_ENGINES)
def test_the_guide_walkthrough_runs_again_in_its_deployment(engine, tmp_path):
    with deployment(engine) as env:
        first, again = (run_example("guide_walkthrough.py", env, tmp_path) for _ in range(2))
    assert first.returncode == 0 and again.returncode == 0, again.stderr
    assert "Security agent claimed: sec_001" in first.stdout and "Already queued" not in first.stdout
    for line in AGAIN:
        assert line in again.stdout, f"{line!r} missing from:\n{again.stdout}"


def test_the_team_names_are_exactly_all_and_in_the_facade():
    for name in memory.team.__all__:
        assert getattr(memory, name) is getattr(memory.team, name) and name in memory.__all__
    exported = {name for name, value in vars(memory.team).items()
                if not name.startswith("_") and not isinstance(value, ModuleType)}
    assert exported == set(memory.team.__all__)  # nothing public slips in unnoticed
    with pytest.raises(AttributeError):
        memory.NotAName  # noqa: B018


def test_the_record_and_errors_load_nothing_of_memory():
    code = "import sys, tiers.record, tiers.errors; print(sorted(m for m in sys.modules if m.startswith('memory')))"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
