"""Real English text for tests and benchmarks that need it, with nothing to download: comment and
docstring lines of this Python's standard library, in a fixed order."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path


def stdlib_sentences(n: int) -> list[str]:
    """The first ``n`` distinct lines of 40-160 characters that read as words."""
    seen: dict[str, None] = {}
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        for line in path.read_text(errors="ignore").splitlines():
            text = line.strip().lstrip("#").strip().strip('"').strip()
            if 40 <= len(text) <= 160 and re.search(r"[a-z]{3,} [a-z]{3,} [a-z]{3,}", text):
                seen.setdefault(text)
                if len(seen) == n:
                    return list(seen)
    raise ValueError(f"only {len(seen)} sentences in the standard library")
