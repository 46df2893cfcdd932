"""The six scenarios of examples/conversation/memory_patterns.py, on every manager and as a script."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conversation_backends import Backend, ScriptedLLM
from memory.conversation import WorkingMemoryAgent
from support import TEST_REDIS_URL, real_redis

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "conversation" / "memory_patterns.py"
_spec = importlib.util.spec_from_file_location("memory_patterns", EXAMPLE)
patterns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(patterns)  # type: ignore[union-attr]


async def test_the_six_scenarios_on_every_manager(backend: Backend, capsys):
    results = await patterns.run_scenarios(WorkingMemoryAgent(memory_manager=backend.open()))

    basic = results["basic"]  # 1. context builds up over the turns
    assert basic["statuses"] == ["success"] * 4
    assert basic["memory"] == "\n".join(f"[{i}] {text}" for i, text in enumerate(basic["interactions"], 1))

    multiple = results["multiple"]  # 2. isolated conversations
    assert multiple["statuses"] == ["success"] * 3
    assert "Bob" in multiple["bob"] and "Alice" not in multiple["bob"] and "transformers" not in multiple["bob"]
    assert multiple["alice"].endswith("[5] I also want to learn about transformers") and "Bob" not in multiple["alice"]

    errors = results["errors"]  # 3. missing ids and metadata
    assert errors["no_id"] == "error: invalid input: metadata has no conversation_id"
    assert errors["no_metadata"].startswith("error: invalid input: metadata is None")
    assert errors["bad_id"].startswith("error: invalid input: conversation_id 'no spaces allowed'")

    standalone = results["standalone"]  # 4. no manager
    assert standalone == {"status": "success", "stored": False, "memory": "[1] Remember that I prefer dark mode"}

    support = results["support"]  # 5. the support ticket keeps its details
    assert support["statuses"] == ["success"] * 5
    for detail in ("Jane Smith", "#4567", "March 2024", "TXN001, TXN002", "$99.99", "case closed"):
        assert detail in support["memory"]

    returning = results["returning"]  # 6. the returning customer's context is there
    assert returning["statuses"] == ["success"] * 3
    assert returning["context_on_return"] == "\n".join(f"[{i}] {t}" for i, t in enumerate(returning["first_visit"], 1))
    assert returning["memory"].endswith("[3] Carol is back: E42 again after reboot")
    assert "6. Memory retrieval: a returning customer" in capsys.readouterr().out


async def test_the_scenarios_with_a_model_rewriting_the_memory(tmp_path):
    llm = ScriptedLLM()
    results = await patterns.run_scenarios(WorkingMemoryAgent(llm, patterns.create_memory_agent({}).memory_manager))
    assert results["support"]["memory"].startswith("Customer Jane Smith called about billing issue with invoice #4567 | ")
    assert results["standalone"]["memory"] == "Remember that I prefer dark mode"
    assert len(llm.calls) == 4 + 3 + 1 + 5 + 3


@pytest.mark.parametrize("memory_type", ["memory", "database", "tiered", "redis"])
def test_the_example_runs_as_a_script(memory_type, tmp_path):
    args = [sys.executable, str(EXAMPLE), "--memory-type", memory_type]
    prefix = f"t{uuid.uuid4().hex[:12]}"
    client = None
    if memory_type == "redis":
        client = real_redis()  # fails under TIERMEM_REQUIRE_SERVICES=1 when Redis is absent
        args += ["--redis-url", TEST_REDIS_URL, "--key-prefix", prefix]
    if memory_type == "database":
        args += ["--db", f"sqlite:///{tmp_path / 'conversations.sqlite'}"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("All six scenarios ran.")
        for heading in ("1. Basic memory operations", "2. Multiple conversations", "3. Error handling",
                        "4. Agent without memory manager", "5. Advanced memory patterns", "6. Memory retrieval"):
            assert heading in done.stdout
    finally:
        if client is not None:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            assert keys  # the run wrote where it was told to
            client.delete(*keys)
            client.close()
