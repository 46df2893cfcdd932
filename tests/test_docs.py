"""The Python examples of README.md and docs/*.md run as written.

Each block runs as a user would run it, as a script in a fresh process, twice in a row in one
scratch directory, and must print the same both times (so examples are safe to run again). When
the page shows what a block prints (a ```text block introduced by "prints" right after it), the
output must be exactly that. Every block runs on the embedded engine (REDIS_URL=""); blocks that
use Redis run again on the test Redis, under a key prefix of their own that is deleted after.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from support import TEST_REDIS_URL, real_redis
from team_support import delete_prefix

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```text\n(.*?)```)?", re.S)
# what marks a block that talks to Redis (the others, such as the embeddings examples, run once)
USES_REDIS = re.compile(r"AgentMemoryAPI|get_redis_memory|RedisShortTermMemory|MemoryManager\(|create_memory_agent")

# Runs the block as __main__. With a prefix, the engine's default key_prefix is that prefix (the
# coordination layer reads TIERMEM_KEY_PREFIX itself), so a run leaves nothing outside it.
RUNNER = """
import dataclasses, runpy, sys
prefix = sys.argv[2]
if prefix:
    from memory.config import MemoryConfig
    next(f for f in dataclasses.fields(MemoryConfig) if f.name == "key_prefix").default = prefix
runpy.run_path(sys.argv[1], run_name="__main__")
"""

EXAMPLES = [
    pytest.param(source, expected, id=f"{page.relative_to(REPO)}:{number}")
    for page in PAGES
    for number, (source, expected) in enumerate(BLOCK.findall(page.read_text()), 1)
]


def run_twice(source: str, scratch: Path, redis_url: str, prefix: str = "") -> str:
    """Run ``source`` twice in ``scratch`` (its data directory); return what it printed, the same both times."""
    script = scratch / "example.py"
    script.write_text(source)
    workdir = scratch / "work"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "REDIS_URL": redis_url, "HF_HUB_OFFLINE": "1"}
    env.pop("TIERMEM_KEY_PREFIX", None)
    if prefix:
        env["TIERMEM_KEY_PREFIX"] = prefix
    outputs = []
    for attempt in (1, 2):
        done = subprocess.run([sys.executable, "-c", RUNNER, str(script), prefix], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"run {attempt} failed:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1], "a second run printed something else:\n" + "\n---\n".join(outputs)
    return outputs[0]


def test_the_pages_have_examples():
    assert len(EXAMPLES) >= 10
    assert {page.name for page in PAGES} >= {"README.md", "simulations.md", "agent-teams.md", "conversations.md",
                                             "search.md", "configuration.md", "operations.md", "scale.md"}


@pytest.mark.parametrize(("source", "expected"), EXAMPLES)
def test_example_runs_twice_on_the_embedded_engine(source, expected, tmp_path):
    printed = run_twice(source, tmp_path, redis_url="")
    if expected:
        assert printed == expected


@pytest.mark.parametrize(("source", "expected"), [e for e in EXAMPLES if USES_REDIS.search(e.values[0])])
def test_example_runs_twice_on_redis(source, expected, tmp_path):
    client = real_redis()
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        printed = run_twice(source, tmp_path, redis_url=TEST_REDIS_URL, prefix=prefix)
    finally:
        delete_prefix(client, prefix)
        client.close()
    if expected:
        assert printed == expected
