"""What the ``tiermem`` command prints for people: aligned tables and sensibly rounded numbers.

Columns are two spaces apart and as wide as their widest cell, numbers right-aligned. A
statistic is formatted by what its name says it is: ``bytes`` and ``*_bytes`` as sizes (KiB,
MiB...), ``*rate`` as a percentage, ``*ratio`` as a factor, other floats to two decimals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

VECTORS = ("full_vector", "compressed_vector", "abstract_vector")  # highest resolution first


def jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    return tolist() if callable(tolist) else str(value)


def size(n: float) -> str:
    """Bytes for people: ``512 B``, ``21.2 KiB``, ``3.0 MiB``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def formatted(key: str, value: Any) -> str:
    """One statistic as text, by what its name says it is (bytes, a rate, a ratio, seconds)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and (key == "bytes" or key.endswith("_bytes")):
        return size(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if key.endswith("rate"):
            return f"{value:.1%}"
        if key.endswith("ratio"):
            return f"{value:.2f}x"
        if key in ("ttl", "seconds") or key.endswith("_seconds"):
            return f"{value:,.2f} s"
        return f"{value:,.2f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), default=jsonable)
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Columns two spaces apart, each as wide as its widest cell; ``right`` aligns numbers."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = []
    for row in (headers, *rows):
        cells = [cell.rjust(width) if flush else cell.ljust(width) for cell, width, flush in zip(row, widths, right)]
        lines.append("  ".join(cells).rstrip())
    return lines


def pairs(items: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    """``key  value`` lines, the values in one column."""
    width = max((len(key) for key, _ in items), default=0)
    return [f"{indent}{key.ljust(width)}  {value}".rstrip() for key, value in items]


LABELS = {"agent_id": "agent", "total_memories": "memories", "memory_type_distribution": "types",
          "cache_hit_rate": "cache hit rate", "count": "memories", "bytes": "size",
          "compression_ratio": "compression", "stm_to_im": "STM -> IM", "im_to_ltm": "IM -> LTM",
          "ltm_to_im": "LTM -> IM", "busy": "busy elsewhere", "ltm": "LTM"}


def _label(key: str) -> str:
    if key not in LABELS and key.endswith("_bytes"):  # the value says it is a size
        key = key.removesuffix("_bytes")
    return LABELS.get(key, key.replace("_", " "))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summary_text(found: Mapping[str, Any]) -> str:
    """A flat mapping (a maintenance report, a deployment) as aligned ``name  value`` lines."""
    return "\n".join(pairs([(_label(key), formatted(key, value)) for key, value in found.items()]))


def indexed_text(by_agent: Mapping[str, int]) -> str:
    """What a reindex indexed: one line per agent, then all of them."""
    rows = [[agent, formatted("count", n)] for agent, n in by_agent.items()]
    if len(rows) != 1:
        rows.append([f"all {len(rows):,}", formatted("count", sum(by_agent.values()))])
    return "\n".join(table(["AGENT", "INDEXED"], rows, [False, True]))


def stats_text(stats: Mapping[str, Any]) -> str:
    """``get_memory_statistics`` as tables: its single values first, then the tiers, the types,
    and every other section as aligned pairs (a statistic added to the engine shows up too)."""
    overview = [(_label(k), formatted(k, v)) for k, v in stats.items()
                if not isinstance(v, dict) and not (k == "agent_id" and v is None)]
    blocks = [pairs(overview)]
    tiers = stats.get("tiers")
    if isinstance(tiers, dict) and tiers:
        blocks.append(_tier_table(tiers))
    types = stats.get("memory_type_distribution")
    if isinstance(types, dict) and types:
        total = sum(types.values())
        rows = [[name, formatted("count", n), f"{n / total:.1%}" if total else "-"] for name, n in types.items()]
        blocks.append(table(["TYPE", "MEMORIES", "SHARE"], rows, [False, True, True]))
    for key, value in stats.items():
        if isinstance(value, dict) and key not in ("tiers", "memory_type_distribution"):
            blocks.append([_label(key)] + pairs([(_label(k), formatted(k, v)) for k, v in value.items()], "  "))
    return "\n\n".join("\n".join(block) for block in blocks)


def _tier_table(tiers: Mapping[str, Mapping[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(key for tier in tiers.values() for key in tier))
    rows = [[name] + [formatted(key, tier.get(key)) for key in keys] for name, tier in tiers.items()]
    right = [False] + [all(_is_number(tier.get(key)) for tier in tiers.values()) for key in keys]
    if len(tiers) > 1:
        sums = [sum(tier[key] for tier in tiers.values()) if key in ("count", "bytes") else None for key in keys]
        rows.append(["all"] + ["" if s is None else formatted(key, s) for key, s in zip(keys, sums)])
    return table(["TIER"] + [_label(key).upper() for key in keys], rows, right)


def preview(value: Any, width: int) -> str:
    """A value as one line of compact JSON, cut to ``width`` characters."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=jsonable)
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def _vector(embeddings: Mapping[str, Any] | None) -> str:
    """The highest-resolution vector a memory carries: its name, size, length and first values."""
    for name in VECTORS:
        vector = (embeddings or {}).get(name)
        if vector is not None and len(vector):
            values = [float(x) for x in vector]
            head = " ".join(f"{x:.2f}" for x in values[:3]) + (" ..." if len(values) > 3 else "")
            norm = math.sqrt(sum(x * x for x in values))
            return f"{name.removesuffix('_vector')} {len(values)}d |{norm:.2f}| [{head}]"
    return "-"


def memories_text(memories: Sequence[Mapping[str, Any]], vectors: bool, columns: int) -> str:
    headers = ["STEP", "TYPE", "TIER", "IMPORTANCE"] + (["VECTOR"] if vectors else []) + ["CONTENTS"]
    rows = []
    for memory in memories:
        meta = memory.get("metadata") or {}
        row = [str(memory.get("step_number")), str(meta.get("memory_type", "-")),
               str(memory.get("tier", meta.get("tier", "-"))), formatted("importance", meta.get("importance_score"))]
        rows.append(row + ([_vector(memory.get("embeddings"))] if vectors else []))
    right = [True, False, False, True] + ([False] if vectors else [])
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers[:-1])]
    room = max(columns - sum(widths) - 2 * len(widths), 24)
    rows = [row + [preview(memory.get("contents"), room)] for row, memory in zip(rows, memories)]
    return "\n".join(table(headers, rows, right + [False]))


def agents_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per agent: its id, then its memories per tier and in all."""
    names = list(rows[0]) if rows else ["agent_id", "stm", "im", "ltm", "total"]
    cells = [[str(row["agent_id"])] + [formatted("count", row[name]) for name in names[1:]] for row in rows]
    return "\n".join(table(["AGENT"] + [name.upper() for name in names[1:]], cells,
                           [False] + [True] * (len(names) - 1)))
