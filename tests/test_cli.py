"""The ``tiermem`` command, run as a user runs it: a separate process on the embedded engine
(``REDIS_URL=""``), whose data directory carries the memories from one command to the next; and
in this process (``main(argv)``) on both Redis engines, for its tables, JSON, filters, help,
exit statuses, progress, and the embedded snapshot that read-only commands leave alone."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from memory import AgentMemoryAPI, MemoryConfig
from memory import cli as cli_module
from memory.cli import build_parser, main
from support import TEST_REDIS_URL, real_redis

REPO = Path(__file__).resolve().parent.parent


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

    shown = tiermem("stats", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert stats["mode"] == "embedded"
    assert stats["agents"] == 3
    assert stats["total_memories"] == demo["total_memories"]
    assert stats["memory_type_distribution"] == demo["memory_type_distribution"]
    assert {t: s["count"] for t, s in stats["tiers"].items()} == {t: s["count"] for t, s in demo["tiers"].items()}

    one = tiermem("stats", "--agent", "agent-0", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    agent_stats = json.loads(one.stdout)
    assert agent_stats["agent_id"] == "agent-0"
    assert agent_stats["memory_type_distribution"]["state"] == 60

    maintained = tiermem("maintain", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert maintained.returncode == 0, maintained.stderr
    report = json.loads(maintained.stdout)
    assert report["agents"] == 3 and report["busy"] == []

    again = json.loads(tiermem("stats", "--json", "--data-dir", data_dir, cwd=tmp_path).stdout)
    assert again["total_memories"] == demo["total_memories"]


def test_reindex_indexes_every_demo_memory_and_the_demo_searches(demo_run, tmp_path):
    run, data_dir = demo_run
    assert run.returncode == 0, run.stderr
    assert "states most like the last one" in run.stdout and "memories within 2 of" in run.stdout
    rebuilt = tiermem("reindex", "--json", "--data-dir", data_dir, cwd=tmp_path)
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
    shown = tiermem("deployment", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    first = json.loads(shown.stdout)
    assert first["id"] and first["key_prefix"] == "tiermem" and first["ltm"].endswith("ltm.sqlite")
    for leftover in (tmp_path / "data").glob("ltm.sqlite*"):
        leftover.unlink()
    refused = tiermem("stats", "--data-dir", data_dir, cwd=tmp_path)
    assert refused.returncode == 1 and "holds no deployment" in refused.stderr and "Traceback" not in refused.stderr
    adopted = tiermem("deployment", "--adopt", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert json.loads(adopted.stdout)["id"] != first["id"]
    assert tiermem("stats", "--data-dir", data_dir, cwd=tmp_path).returncode == 0


# -- the command as a tool: in-process runs (main(argv)) on both Redis engines ------------------------------


def cli(capsys, *argv):
    """Run ``tiermem *argv`` in this process: (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@dataclass
class Target:
    options: list[str]  # the CLI's engine options for it
    config: MemoryConfig  # the same engine, for the test's own AgentMemoryAPI

    def api(self):
        return AgentMemoryAPI(self.config)


@pytest.fixture(params=["embedded", "redis"])
def target(request, tmp_path):
    """An empty engine, embedded or on the test Redis under a prefix of its own (deleted afterwards)."""
    data_dir = str(tmp_path / "data")
    if request.param == "embedded":
        yield Target(["--redis-url", "", "--data-dir", data_dir], MemoryConfig(redis_url="", data_dir=data_dir))
        return
    client = real_redis()
    prefix = f"tcli{uuid.uuid4().hex[:10]}"
    yield Target(["--redis-url", TEST_REDIS_URL, "--prefix", prefix, "--data-dir", data_dir],
                 MemoryConfig(redis_url=TEST_REDIS_URL, key_prefix=prefix, data_dir=data_dir))
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def seeded(target, capsys, tmp_path):
    """The target with the demo's memories: agent-0 and agent-1, 40 steps, in every tier, with
    state vectors (a settings file turns them on), so that `show --vectors` has some to show."""
    settings = tmp_path / "vectors.toml"
    settings.write_text("[search]\nstate_vectors = true\n")
    status, _, err = cli(capsys, "demo", "--agents", "2", "--steps", "40", "--config", str(settings), *target.options)
    assert status == 0, err
    return target


def lines_from(out, first_header):
    """The table that starts with a line whose first word is ``first_header``, as lists of cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_header])
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_version_comes_from_the_package_metadata(capsys, monkeypatch):
    status, out, _ = cli(capsys, "--version")

    assert status == 0
    assert out == f"tiermem {metadata.version('tiermem')}\n"

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli_module.metadata, "version", missing)
    with open(REPO / "pyproject.toml", "rb") as handle:
        assert cli_module.package_version() == tomllib.load(handle)["project"]["version"]


COMMANDS = ["demo", "stats", "agents", "show", "maintain", "reindex", "export", "import", "deployment", "serve"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_and_every_option_has_help(capsys, command):
    status, out, _ = cli(capsys, *([command] if command else []), "--help")

    assert status == 0
    assert out.startswith(f"usage: tiermem {command or ''}".rstrip())
    parser = build_parser()
    if command is None:
        subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert set(subcommands.choices) == set(COMMANDS)
        described = {action.dest: action.help for action in subcommands._choices_actions}
        assert all(described[name] for name in COMMANDS), described
    else:
        subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subcommands.choices[command]
        assert parser.description and " ".join(parser.description.split()) in " ".join(out.split())
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings or action.dest
        assert " ".join(action.help.split()[:4]) in " ".join(out.split()), action.help


def test_stats_prints_aligned_tables_and_json_for_programs(seeded, capsys):
    status, out, err = cli(capsys, "stats", *seeded.options)
    assert status == 0, err
    assert err == ""
    _, raw, _ = cli(capsys, "stats", "--json", *seeded.options)
    stats = json.loads(raw)
    with seeded.api() as api:
        expected = api.get_memory_statistics()
    assert stats["total_memories"] == expected["total_memories"] > 0
    assert stats["tiers"] == expected["tiers"]
    assert stats["deployment"] == expected["deployment"]

    tiers = lines_from(out, "TIER")
    assert tiers[0] == ["TIER", "MEMORIES", "SIZE", "COMPRESSION"]
    by_tier = {row[0]: row[1:] for row in tiers[1:]}
    assert set(by_tier) == {"stm", "im", "ltm", "all"}
    for name in ("stm", "im", "ltm"):
        count, number, unit, ratio = by_tier[name]
        assert count == f"{stats['tiers'][name]['count']:,}"
        assert re.fullmatch(r"\d+ B|\d+\.\d (KiB|MiB|GiB)", f"{number} {unit}")
        assert re.fullmatch(r"\d+\.\d\dx", ratio)
        assert ratio == f"{stats['tiers'][name]['compression_ratio']:.2f}x"
    assert by_tier["all"][0] == f"{stats['total_memories']:,}"
    header = next(line for line in out.splitlines() if line.startswith("TIER"))
    rows = out.splitlines()[out.splitlines().index(header):][:5]
    assert len({len(line) for line in rows}) == 1 or all(  # right-aligned numbers end in one column
        line.rfind(cell) + len(cell) == header.rfind("MEMORIES") + len("MEMORIES")
        for line, cell in zip(rows[1:], [r[1] for r in tiers[1:]]))
    types = {row[0]: row[1] for row in lines_from(out, "TYPE")[1:]}
    assert types == {name: f"{n:,}" for name, n in stats["memory_type_distribution"].items()}
    before_deployment = out.split("\ndeployment\n")[0]
    assert not re.search(r"\d\.\d{3,}", before_deployment), before_deployment  # 2.53, not 2.5329176334106727
    assert re.search(r"^cache hit rate +\d+\.\d%$", out, re.M)
    assert re.search(r"^  mean +\d\.\d\d$", out, re.M)
    assert stats["deployment"]["id"] in out

    status, out, err = cli(capsys, "stats", "--agent", "agent-1", *seeded.options)
    assert status == 0, err
    assert re.search(r"^agent +agent-1$", out, re.M)


def test_agents_lists_every_agent_with_its_memories_per_tier(seeded, capsys):
    status, raw, err = cli(capsys, "agents", "--json", *seeded.options)
    assert status == 0, err
    listed = json.loads(raw)
    with seeded.api() as api:
        expected = []
        for agent in ("agent-0", "agent-1"):
            counts = {tier: s["count"] for tier, s in api.get_memory_statistics(agent)["tiers"].items()}
            expected.append({"agent_id": agent, **counts, "total": sum(counts.values())})
    assert listed == expected
    assert all(row["stm"] and row["im"] and row["ltm"] for row in listed)

    status, out, err = cli(capsys, *seeded.options, "agents")  # engine options before the command, too
    assert status == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["AGENT", "STM", "IM", "LTM", "TOTAL"]
    assert rows[1:] == [[row["agent_id"], *(f"{row[t]:,}" for t in ("stm", "im", "ltm", "total"))] for row in listed]
    assert len({line.rfind(line.split()[-1]) + len(line.split()[-1]) for line in out.splitlines()}) == 1


def test_maintain_reindex_and_deployment_print_aligned_text_and_json(seeded, capsys):
    with seeded.api() as api:
        api.store_many([{"agent_id": "agent-0", "data": {"step": step}, "step_number": 100 + step} for step in range(30)])
    options = [*seeded.options, "--config", str(write_config(seeded, stm_limit=10))]
    status, out, err = cli(capsys, "maintain", *options)
    assert status == 0, err
    shown = dict(re.findall(r"^(\S.*?)  +(\S.*)$", out, re.M))
    assert shown["agents"] == "2" and shown["busy elsewhere"] == "-"
    assert int(shown["STM -> IM"]) >= 30 and re.fullmatch(r"\d+\.\d\d s", shown["seconds"])
    assert int(shown["moved"]) == sum(int(shown[name]) for name in ("STM -> IM", "IM -> LTM", "LTM -> IM"))
    status, raw, err = cli(capsys, "maintain", "--json", *options)
    assert status == 0, err
    assert json.loads(raw)["stm_to_im"] == 0  # the text run moved them

    status, out, err = cli(capsys, "reindex", *seeded.options)
    assert status == 0, err
    _, raw, _ = cli(capsys, "reindex", "--json", *seeded.options)
    indexed = json.loads(raw)
    rows = [line.split() for line in out.splitlines()]
    assert rows == [["AGENT", "INDEXED"], *([agent, f"{n:,}"] for agent, n in indexed["by_agent"].items()),
                    ["all", "2", f"{indexed['memories_indexed']:,}"]]

    status, out, err = cli(capsys, "deployment", *seeded.options)
    assert status == 0, err
    _, raw, _ = cli(capsys, "deployment", "--json", *seeded.options)
    bound = json.loads(raw)
    assert re.search(rf"^id +{bound['id']}$", out, re.M) and re.search(rf"^key prefix +{bound['key_prefix']}$", out, re.M)


def write_config(target, stm_limit):
    """A settings file beside the target's data: a small STM, so maintenance has work."""
    path = Path(target.config.data_dir) / "small-stm.toml"
    path.write_text(f"[stm]\nmemory_limit = {stm_limit}\n")
    return path


def steps_shown(out):
    return [int(row[0]) for row in lines_from(out, "STEP")[1:]]


@pytest.mark.parametrize("span, lo, hi", [("3:6", 3, 6), ("35:", 35, 39), (":2", 0, 2), (":", 0, 39)])
def test_show_prints_the_memories_of_a_span_of_steps(seeded, capsys, span, lo, hi):
    status, out, err = cli(capsys, "show", "agent-0", "--steps", span, *seeded.options)
    assert status == 0, err
    with seeded.api() as api:
        expected = api.retrieve_by_time_range("agent-0", lo, hi)
    rows = lines_from(out, "STEP")
    assert rows[0] == ["STEP", "TYPE", "TIER", "IMPORTANCE", "CONTENTS"]
    assert steps_shown(out) == [m["step_number"] for m in expected]
    assert [row[1:3] for row in rows[1:]] == [[m["metadata"]["memory_type"], m["tier"]] for m in expected]
    assert [row[3] for row in rows[1:]] == [f"{m['metadata']['importance_score']:.2f}" for m in expected]
    for line, memory in zip(out.splitlines()[1:], expected):
        assert line.split("  ")[-1].startswith(json.dumps(memory["contents"], separators=(",", ":"))[:20])
    assert "VECTOR" not in out and "_vector" not in out


def test_show_filters_by_type_and_limit_and_hides_vectors_unless_asked(seeded, capsys):
    options = seeded.options
    status, out, err = cli(capsys, "show", "agent-0", "--type", "action", *options)
    assert status == 0, err
    with seeded.api() as api:
        actions = api.retrieve_by_time_range("agent-0", 0, 39, memory_type="action")
    assert actions and steps_shown(out) == [m["step_number"] for m in actions]
    assert {row[1] for row in lines_from(out, "STEP")[1:]} == {"action"}

    _, out, _ = cli(capsys, "show", "agent-0", "--limit", "3", "--steps", "10:", *options)
    assert len(steps_shown(out)) == 3 and min(steps_shown(out)) == 10

    _, raw, _ = cli(capsys, "show", "agent-0", "--steps", "0:5", "--json", *options)
    plain = json.loads(raw)
    assert [m["step_number"] for m in plain] == [m["step_number"] for m in actions if m["step_number"] <= 5] or plain
    assert plain and all("embeddings" not in m and m["contents"] for m in plain)
    assert {m["step_number"] for m in plain} <= set(range(6))
    _, raw, _ = cli(capsys, "show", "agent-0", "--steps", "0:5", "--json", "--vectors", *options)
    with_vectors = json.loads(raw)
    assert [m["memory_id"] for m in with_vectors] == [m["memory_id"] for m in plain]
    assert all(any(m["embeddings"][name] for name in ("full_vector", "compressed_vector", "abstract_vector"))
               for m in with_vectors)
    _, out, _ = cli(capsys, "show", "agent-0", "--steps", "30:", "--vectors", *options)
    assert lines_from(out, "STEP")[0] == ["STEP", "TYPE", "TIER", "IMPORTANCE", "VECTOR", "CONTENTS"]
    assert re.search(r"(full|compressed|abstract) \d+d \|\d\.\d\d\| \[", out)

    status, out, err = cli(capsys, "show", "nobody", *options)
    assert (status, out) == (0, "") and "nobody has no memories" in err


@pytest.mark.parametrize("bad", ["5", "x:3", "9:3", "1:2:3", "=-1:", "3:y", ""])
def test_a_bad_steps_span_is_a_usage_error(tmp_path, capsys, bad):
    argv = ["show", "agent-0", f"--steps{bad}" if bad.startswith("=") else "--steps", *([] if bad.startswith("=") else [bad])]
    status, out, err = cli(capsys, *argv, "--redis-url", "", "--data-dir", str(tmp_path / "data"))

    assert status == 2
    assert out == ""
    assert "usage: tiermem show" in err and "argument --steps" in err
    assert not (tmp_path / "data").exists()  # refused before any engine started


def test_an_engine_error_is_one_line_and_exit_status_1(target, capsys):
    for argv in (["show", "bad id!"], ["show", "agent-0", "--type", "bogus"], ["stats", "--agent", "no way"]):
        status, out, err = cli(capsys, *argv, *target.options)
        assert status == 1, argv
        assert out == ""
        assert len(err.splitlines()) == 1 and err.startswith("tiermem: error: "), err
        assert "Traceback" not in err


def test_an_engine_error_in_a_real_process_is_one_line_without_a_traceback(tmp_path):
    run = tiermem("show", "bad id!", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)

    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("tiermem: error: agent_id 'bad id!'"), run.stderr


def test_an_interrupt_exits_130_quietly(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "AgentMemoryAPI", interrupted)
    assert cli(capsys, "stats", "--redis-url", "", "--data-dir", str(tmp_path)) == (130, "", "")


def test_a_closed_pipe_ends_the_command_quietly(demo_run, tmp_path):
    _, data_dir = demo_run
    command = f"{shlex.quote(sys.executable)} -m memory.cli"
    where = f"--data-dir {shlex.quote(data_dir)}"
    for pipeline in (f"{command} stats {where} | head -c 10", f"{command} show agent-0 {where} | head -1",
                     f"{command} stats {where} | true", f"{command} show agent-0 {where} --json | true"):
        run = subprocess.run(["bash", "-c", pipeline + '; echo "status=${PIPESTATUS[0]}" >&2'], cwd=tmp_path,
                             env={**os.environ, "REDIS_URL": ""}, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, (pipeline, run.stderr)
        status = run.stderr.strip().splitlines()[-1]
        assert status == "status=141" if "true" in pipeline else status in ("status=0", "status=141"), run.stderr
        assert bool(run.stdout) == ("head" in pipeline), pipeline

    reader, writer = os.pipe()
    os.close(reader)  # every write to stdout fails with EPIPE
    try:
        run = subprocess.run([sys.executable, "-m", "memory.cli", "stats", "--data-dir", data_dir], cwd=tmp_path,
                             env={**os.environ, "REDIS_URL": ""}, stdout=writer, stderr=subprocess.PIPE, text=True,
                             timeout=120)
    finally:
        os.close(writer)
    assert (run.returncode, run.stderr) == (141, "")


def snapshot_of(data_dir):
    path = Path(data_dir) / "embedded-redis.msgpack.zst"
    return path, path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("target", ["embedded"], indirect=True)
def test_read_only_commands_leave_the_embedded_snapshot_alone(seeded, capsys):
    path, content, _ = snapshot_of(seeded.config.data_dir)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))  # a time no write can give it
    for argv in (["stats"], ["stats", "--json"], ["stats", "--agent", "agent-0"], ["agents"], ["agents", "--json"],
                 ["show", "agent-0"], ["show", "agent-1", "--steps", "5:9", "--json", "--vectors"],
                 ["show", "agent-0", "--type", "action"], ["deployment"], ["export", "--vectors", "--tiers"]):
        status, _, err = cli(capsys, *argv, *seeded.options)
        assert status == 0, (argv, err)
        assert snapshot_of(seeded.config.data_dir)[1:] == (content, 1_000_000_000_000_000_000), argv

    small_stm = ["--config", str(write_config(seeded, stm_limit=5))]  # so maintenance has work
    status, _, err = cli(capsys, "maintain", *seeded.options, *small_stm)  # a command that writes still snapshots
    assert status == 0, err
    assert snapshot_of(seeded.config.data_dir)[2] != 1_000_000_000_000_000_000
    _, raw, _ = cli(capsys, "stats", "--json", *seeded.options)
    assert json.loads(raw)["memory_type_distribution"]["state"] == 2 * 40


def test_progress_and_start_up_status_go_to_a_terminal_on_stderr_only(seeded, capsys, monkeypatch):
    status, out, err = cli(capsys, "reindex", "--json", *seeded.options)
    assert status == 0 and err == ""  # not a terminal: nothing but the result
    indexed = json.loads(out)

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    for command, progress in (["reindex", "reindexing"], ["maintain", "maintaining"], ["agents", "counting"]):
        status, out, err = cli(capsys, command, "--json", *seeded.options)
        assert status == 0, err
        assert progress in err and "agent-1" in err
        assert ("starting the embedded engine" if seeded.config.redis_url == "" else "connecting to Redis") in err
        json.loads(out)  # stdout holds the result alone
    status, out, err = cli(capsys, "reindex", "--json", *seeded.options)
    assert json.loads(out) == indexed


def test_export_and_import_carry_an_agents_memories_to_another_engine_as_they_were(seeded, capsys, tmp_path,
                                                                                   monkeypatch):
    status, out, err = cli(capsys, "export", "--agent", "agent-0", "--agent", "agent-1", "--tiers", "--vectors",
                           *seeded.options)
    assert status == 0, err
    lines = out.splitlines()
    with seeded.api() as api:
        held = sum(api.get_memory_statistics(agent)["total_memories"] for agent in ("agent-0", "agent-1"))
    assert json.loads(lines[0]) == {"format": "tiermem-memories", "version": 1} and len(lines) == 1 + held
    assert {json.loads(line)["tier"] for line in lines[1:]} == {"stm", "im", "ltm"}
    path = tmp_path / "memories.jsonl"
    path.write_text(out)
    options = list(seeded.options)
    options[options.index("--data-dir") + 1] = str(tmp_path / "copy")
    if "--prefix" in options:
        options[options.index("--prefix") + 1] += "-copy"
    status, out, err = cli(capsys, "import", str(path), "--tiers", "--json", *options)
    assert status == 0, err
    assert json.loads(out) == {"read": held, "imported": held, "skipped": 0, "agents": 2}
    for agent in ("agent-0", "agent-1"):
        shown = [cli(capsys, "show", agent, "--json", "--vectors", *where)[1] for where in (seeded.options, options)]
        assert shown[0] == shown[1]
    monkeypatch.setattr(sys, "stdin", io.StringIO(path.read_text()))
    status, out, _ = cli(capsys, "import", "-", "--json", *options)
    assert (status, json.loads(out)["skipped"]) == (0, held)
    path.write_text(lines[0] + "\n" + lines[1] + "\n{not json\n")
    status, _, err = cli(capsys, "import", str(path), *options)
    assert status == 1 and "line 3 is not JSON" in err
    status, _, err = cli(capsys, "import", str(tmp_path / "missing.jsonl"), *options)
    assert status == 1 and "cannot read" in err
