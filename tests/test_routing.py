"""Splitting agents over processes (memory/routing.py): stable, complete, disjoint, checked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memory import InvalidInputError, agents_for_process, process_for_agent

AGENTS = [f"agent-{i}" for i in range(1000)]


def test_every_agent_has_exactly_one_process_and_the_split_is_even():
    parts = [agents_for_process(AGENTS, process, 4) for process in range(4)]
    assert sorted(agent for part in parts for agent in part) == sorted(AGENTS)
    assert all(200 <= len(part) <= 300 for part in parts), [len(part) for part in parts]
    assert all(process_for_agent(agent, 4) == process for process, part in enumerate(parts) for agent in part)


def test_the_split_is_the_same_in_another_interpreter():
    here = [process_for_agent(agent, 7) for agent in AGENTS[:50]]
    code = f"from memory import process_for_agent; print([process_for_agent(a, 7) for a in {AGENTS[:50]!r}])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=".").stdout
    assert there.strip() == str(here)


@pytest.mark.parametrize("call", [lambda: process_for_agent("a b", 2), lambda: process_for_agent("a", 0),
                                  lambda: process_for_agent("a", True), lambda: agents_for_process(["a"], 2, 2),
                                  lambda: agents_for_process(["a"], -1, 2)])
def test_bad_input_is_a_typed_error(call):
    with pytest.raises(InvalidInputError):
        call()
