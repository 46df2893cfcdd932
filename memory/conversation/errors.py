"""The conversation layer's errors, all under tiermem's one root (:mod:`tiers.errors`).

    MemoryAPIException
    ├── MemoryStoreException
    │   ├── InvalidInputError
    │   │   └── InvalidConversationError     a bad conversation id, working memory or update
    │   ├── ConversationConflictError        other writers kept winning until the deadline
    │   └── OutcomeUnknownError              a write's reply was lost twice: it may have happened
    ├── MemoryRetrievalException             a backend did not answer a read
    └── LLMClientError                       the LLM client failed or answered nonsense

The stores in tiers/ translate every driver error into tiermem's; the managers raise
``MemoryStoreException`` / ``MemoryRetrievalException`` for them (``raise ... from``), so callers
never need a driver's exception classes to handle a failure.
"""

from __future__ import annotations

from tiers.errors import InvalidInputError, MemoryAPIException, MemoryStoreException


class InvalidConversationError(InvalidInputError):
    """A conversation id, working memory or update that the managers refuse; nothing was written."""


class ConversationConflictError(MemoryStoreException):
    """An update lost the version race until its deadline; nothing of it was written.

    ``attempts`` counts the tries, so a caller can tell a hot conversation from a stuck one.
    """

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class LLMClientError(MemoryAPIException):
    """The LLM client raised or returned something other than ``{"llm_response": str, ...}``."""
