"""The ``tiermem`` command, run as a user runs it: a separate process on the embedded engine
(``REDIS_URL=""``), whose data directory carries the memories from one command to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def tiermem(*args, cwd):
    env = {**os.environ, "REDIS_URL": ""}
    return subprocess.run(
        [sys.executable, "-m", "memory.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def demo_statistics(stdout):
    """The JSON block the demo prints after its "statistics:" line."""
    _, marker, block = stdout.partition("\nstatistics:\n")
    assert marker, f"no statistics in the demo output:\n{stdout}"
    return json.loads(block)


@pytest.fixture
def demo_run(tmp_path):
    data_dir = str(tmp_path / "data")
    run = tiermem("demo", "--agents", "3", "--steps", "60", "--data-dir", data_dir, cwd=tmp_path)
    return run, data_dir


def test_demo_prints_statistics_with_memories_in_every_tier(demo_run):
    run, _ = demo_run

    assert run.returncode == 0, run.stderr
    assert "Redis mode: embedded" in run.stdout
    stats = demo_statistics(run.stdout)
    assert stats["mode"] == "embedded"
    assert stats["agents"] == 3
    assert stats["memory_type_distribution"]["state"] == 3 * 60
    assert stats["total_memories"] == sum(stats["memory_type_distribution"].values())
    counts = {tier: stats["tiers"][tier]["count"] for tier in ("stm", "im", "ltm")}
    assert all(count > 0 for count in counts.values()), counts
    assert sum(counts.values()) == stats["total_memories"]


@pytest.mark.slow
def test_stats_and_maintain_see_the_demo_memories(demo_run, tmp_path):
    run, data_dir = demo_run
    assert run.returncode == 0, run.stderr
    demo = demo_statistics(run.stdout)

    shown = tiermem("stats", "--data-dir", data_dir, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert stats["mode"] == "embedded"
    assert stats["agents"] == 3
    assert stats["total_memories"] == demo["total_memories"]
    assert stats["memory_type_distribution"] == demo["memory_type_distribution"]
    assert {t: s["count"] for t, s in stats["tiers"].items()} == {t: s["count"] for t, s in demo["tiers"].items()}

    one = tiermem("stats", "--agent", "agent-0", "--data-dir", data_dir, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    agent_stats = json.loads(one.stdout)
    assert agent_stats["agent_id"] == "agent-0"
    assert agent_stats["memory_type_distribution"]["state"] == 60

    maintained = tiermem("maintain", "--data-dir", data_dir, cwd=tmp_path)
    assert maintained.returncode == 0, maintained.stderr
    report = json.loads(maintained.stdout)
    assert report["agents"] == 3 and report["busy"] == []

    again = json.loads(tiermem("stats", "--data-dir", data_dir, cwd=tmp_path).stdout)
    assert again["total_memories"] == demo["total_memories"]


def test_reindex_indexes_every_demo_memory_and_the_demo_searches(demo_run, tmp_path):
    run, data_dir = demo_run
    assert run.returncode == 0, run.stderr
    assert "states most like the last one" in run.stdout and "memories within 2 of" in run.stdout
    rebuilt = tiermem("reindex", "--data-dir", data_dir, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert report["agents"] == 3
    assert report["memories_indexed"] == demo_statistics(run.stdout)["total_memories"]


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--agents", "0"]])
def test_a_bad_count_exits_non_zero_with_a_message(tmp_path, bad):
    run = tiermem("demo", *bad, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert run.returncode != 0
    assert "must be at least 1" in run.stderr
    assert "statistics" not in run.stdout


def test_an_unknown_command_exits_non_zero_with_usage(tmp_path):
    run = tiermem("forget-everything", cwd=tmp_path)

    assert run.returncode != 0
    assert "usage: tiermem" in run.stderr


@pytest.mark.slow
def test_deployment_shows_the_binding_and_adopt_rebinds_after_a_lost_ltm(demo_run, tmp_path):
    run, data_dir = demo_run
    assert run.returncode == 0, run.stderr
    shown = tiermem("deployment", "--data-dir", data_dir, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    first = json.loads(shown.stdout)
    assert first["id"] and first["key_prefix"] == "tiermem" and first["ltm"].endswith("ltm.sqlite")
    for leftover in (tmp_path / "data").glob("ltm.sqlite*"):
        leftover.unlink()
    refused = tiermem("stats", "--data-dir", data_dir, cwd=tmp_path)
    assert refused.returncode == 1 and "holds no deployment" in refused.stderr and "Traceback" not in refused.stderr
    adopted = tiermem("deployment", "--adopt", "--data-dir", data_dir, cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert json.loads(adopted.stdout)["id"] != first["id"]
    assert tiermem("stats", "--data-dir", data_dir, cwd=tmp_path).returncode == 0
