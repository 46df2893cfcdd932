"""The LLM client protocol and the one request the agent makes: rewrite the working memory.

Any object with ``async chat(messages) -> {"llm_response": str, "usage": ...}`` fits (messages
are ``{"role": ..., "content": ...}`` dicts, as chat APIs take them); tiermem ships no client
and never calls the network itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from memory import validation
from memory.conversation.errors import LLMClientError

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You maintain the working memory of one conversation: the facts, preferences, open issues "
    "and decisions that the next turn needs. Given the current working memory and a new message, "
    "reply with the updated working memory only, in at most {max_chars} characters. Keep every "
    "fact that still matters (names, numbers, identifiers) and drop what no longer does."
)


class LLMClient(Protocol):
    async def chat(self, messages: Sequence[Mapping[str, str]]) -> Mapping[str, Any]: ...


def memory_request(working_memory: str, message: str, turn_number: int, max_chars: int) -> list[dict[str, str]]:
    current = working_memory or "(empty: this is the first turn)"
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(max_chars=max_chars)},
        {"role": "user", "content": f"Current working memory:\n{current}\n\nNew message (turn {turn_number}):\n{message}"},
    ]


async def rewrite_working_memory(
    llm_client: LLMClient, working_memory: str, message: str, turn_number: int, max_chars: int
) -> tuple[str, Any]:
    """Ask the model for the new working memory; returns it (cut to ``max_chars``) and the usage."""
    try:
        response = await llm_client.chat(memory_request(working_memory, message, turn_number, max_chars))
    except Exception as exc:  # noqa: BLE001 - any client's failure, reported to the caller typed
        raise LLMClientError(f"the LLM client failed: {type(exc).__name__}: {exc}") from exc
    text = response.get("llm_response") if isinstance(response, Mapping) else None
    if not isinstance(text, str) or not text.strip():
        raise LLMClientError(f'the LLM client must return {{"llm_response": <non-empty str>, ...}}, got {response!r:.200}')
    text = text.strip()
    if len(text) > max_chars:
        log.warning("the model's working memory has %d characters; keeping the first %d", len(text), max_chars)
        text = text[: max_chars - 3] + "..."
    validation.text(text, "the model's working memory", max_chars, error=LLMClientError)  # what every backend stores
    return text, response.get("usage")
