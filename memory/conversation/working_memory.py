"""The offline working memory: a bounded, deterministic digest of a conversation's turns.

Without an LLM the agent keeps one line per turn, ``[<number>] <message>``. When the lines no
longer fit in ``max_chars`` it keeps the first turn (where people usually say who they are and
what they want), a marker saying how many turns were left out, and as many of the newest turns
as fit. The text is its own state: folding a turn into it needs nothing but the previous text,
so it works with any memory manager, including ones that store only the text. Lines that are
not turn lines (an LLM's summary, a note stored by hand) are kept above the turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.state import MAX_WORKING_MEMORY_CHARS

_TURN_LINE = re.compile(r"\[(\d+)\] (.*)")
_OMITTED_LINE = re.compile(r"\[\.\.\. \d+ earlier turns? omitted \.\.\.\]")
_SPACES = re.compile(r"\s+")
_MARKER_ROOM = len("[... 999999999 earlier turns omitted ...]") + 2  # the marker and its two newlines


@dataclass(frozen=True)
class WorkingMemoryPolicy:
    """Bounds of what the agent keeps (all in characters, except ``keep_turns``).

    ``max_chars``: the working memory's size; an LLM's longer answer is cut to it.
    ``max_line_chars``: one turn's line in the offline working memory.
    ``max_message_chars``: the longest message the agent accepts.
    ``keep_turns``: newest turns kept verbatim beside the working memory (0: none).
    """

    max_chars: int = 4000
    max_line_chars: int = 500
    max_message_chars: int = 20_000
    keep_turns: int = 20

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_line_chars", "max_message_chars", "keep_turns"):
            validation.count(getattr(self, name), f"WorkingMemoryPolicy.{name}", minimum=0 if name == "keep_turns" else 1,
                             maximum=MAX_WORKING_MEMORY_CHARS, error=InvalidConversationError)
        if self.max_chars < 2 * self.max_line_chars + 100:
            raise InvalidConversationError(
                f"max_chars ({self.max_chars}) must hold two full turn lines and a marker "
                f"(at least 2 * max_line_chars + 100 = {2 * self.max_line_chars + 100})"
            )


def next_turn_number(working_memory: str) -> int:
    """The number the next turn gets, read from the text (1 when it holds no turn lines)."""
    numbers = [int(m.group(1)) for m in map(_TURN_LINE.fullmatch, working_memory.splitlines()) if m]
    return max(numbers, default=0) + 1


def fold_turn(working_memory: str, number: int, message: str, policy: WorkingMemoryPolicy) -> str:
    """The working memory after turn ``number`` said ``message``."""
    notes: list[str] = []
    turns: list[tuple[int, str]] = []
    for line in working_memory.splitlines():
        match = _TURN_LINE.fullmatch(line)
        if match:
            turns.append((int(match.group(1)), match.group(2)))
        elif line.strip() and not _OMITTED_LINE.fullmatch(line):
            notes.append(_clip(line, policy.max_line_chars))
    turns.append((number, _clip(_SPACES.sub(" ", message).strip(), policy.max_line_chars)))
    notes_budget = min(policy.max_chars // 4, policy.max_chars - 2 * policy.max_line_chars - _MARKER_ROOM)
    return _render(_fit_notes(notes, notes_budget), turns, policy.max_chars)


def _render(notes: list[str], turns: list[tuple[int, str]], max_chars: int) -> str:
    lines = [f"[{number}] {text}" for number, text in turns]
    if _size(notes + lines) <= max_chars:
        return "\n".join(notes + lines)
    first, newest = lines[0], [lines[-1]]
    budget = max_chars - _size(notes + [first]) - _MARKER_ROOM
    for line in reversed(lines[1:-1]):
        if _size(newest) + len(line) + 1 > budget:
            break
        newest.insert(0, line)
    omitted = turns[-len(newest)][0] - turns[0][0] - 1
    marker = f"[... {omitted} earlier turn{'s' if omitted != 1 else ''} omitted ...]"
    return "\n".join(notes + [first, marker] + newest)


def _fit_notes(notes: list[str], budget: int) -> list[str]:
    kept: list[str] = []
    for note in notes:
        if _size(kept) + len(note) + 1 > budget:
            break
        kept.append(note)
    return kept


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(lines: list[str]) -> int:
    return sum(len(line) for line in lines) + max(len(lines) - 1, 0)
