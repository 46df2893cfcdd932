"""DatabaseMemoryManager: one row per conversation in any SQLite or PostgreSQL database.

The table and its compare-and-set upsert are tiers/conversation_sql.py's: one statement inserts a
new conversation, updates one whose version is still the one the caller read, or changes
nothing when another writer came first, so no lock is held across the caller's work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from memory import validation
from memory.conversation.errors import InvalidConversationError
from memory.conversation.stored import StoredMemoryManager
from tiers.conversation_sql import SQLConversations
from tiers.errors import MemoryStoreException, TierUnavailableError
from tiers.keys import validate_prefix


class DatabaseMemoryManager(StoredMemoryManager):
    """Conversations in a SQL database: an SQLAlchemy ``Engine`` you own, or a URL it opens.

    The table is created on construction if missing. ``threads`` bounds the concurrent database
    calls (each holds a pooled connection while it runs).
    """

    _store: SQLConversations
    _where = "the database"

    def __init__(
        self,
        db: Any,
        *,
        namespace: str = "tiermem",
        threads: int = 4,
        conflict_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(conflict_timeout=conflict_timeout, clock=clock)
        try:
            self.namespace = validate_prefix(namespace)
        except ValueError as exc:
            raise InvalidConversationError(str(exc).replace("key_prefix", "namespace")) from None
        threads = validation.count(threads, "threads", minimum=1, maximum=1024, error=InvalidConversationError)
        if isinstance(db, str):
            validation.text(db, "db", 4096, error=InvalidConversationError)
        self._store = SQLConversations(db, self.namespace, threads)

    async def purge_idle(self, idle_for: float) -> int:
        """Delete conversations not written for ``idle_for`` seconds (a retention policy); returns how many."""
        cutoff = self._clock() - validation.seconds(idle_for, "idle_for", zero=True, error=InvalidConversationError)
        self._check_open()
        try:
            return await self._store.purge_idle(cutoff)
        except TierUnavailableError as exc:
            raise MemoryStoreException(f"the database did not purge idle conversations: {exc}") from exc
