"""The README's Python examples run as written (on the embedded engine, in a scratch directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


NEEDS_TEXT_MODEL = re.compile(r"TextEncoder\(|search_by_content\(")  # the real MiniLM: the `text` extra


@pytest.mark.parametrize("source", [
    pytest.param(block, id=f"block{i}", marks=[pytest.mark.text] if NEEDS_TEXT_MODEL.search(block) else [])
    for i, block in enumerate(BLOCKS)
])
def test_readme_example_runs(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", "")
    exec(compile(source, str(README), "exec"), {"__name__": "readme_example"})
