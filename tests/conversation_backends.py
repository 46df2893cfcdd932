"""Every conversation memory manager on every store it runs on, for the tests/test_conversation*.py files.

A ``Backend`` is one store of a kind below and the managers opened on it; the fixtures that open
one of each kind (``backend``, ``shared_backend``, ``manager``) are in tests/conftest.py. Redis
kinds run on the real server (its availability rule is support.unavailable's: a failure under
TIERMEM_REQUIRE_SERVICES=1) and on fakeredis's async client, the database one on a SQLite file
and on PostgreSQL, the tiered one on the embedded engine and on the real Redis (with its head in
Redis, so several processes share it).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from memory import AgentMemoryAPI
from memory.config import MemoryConfig
from memory.conversation import (
    DatabaseMemoryManager,
    InMemoryManager,
    MemoryManager,
    RedisMemoryManager,
    TieredMemoryManager,
)
from support import TEST_REDIS_URL, real_redis

KINDS = ["memory", "redis", "redis-embedded", "sqlite", "postgresql", "tiered", "tiered-redis"]
SHARED_STORE_KINDS = [kind for kind in KINDS if kind != "memory"]  # a second manager sees the first's writes

class Backend:
    """One store and the managers opened on it (all closed at teardown)."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, tmp_path: Path):
        self.kind = kind
        self.prefix = f"t{uuid.uuid4().hex[:12]}"
        self.tmp_path = tmp_path
        self._request = request
        self._managers: list[MemoryManager] = []
        self._apis: list[AgentMemoryAPI] = []
        self._fake_server = fakeredis.FakeServer()
        self._sync_redis = real_redis() if kind in ("redis", "tiered-redis") else None
        self.api: AgentMemoryAPI | None = None
        if kind.startswith("tiered"):
            client = self._sync_redis if kind == "tiered-redis" else fakeredis.FakeRedis(server=fakeredis.FakeServer())
            # LTM in tmp_path/ltm.sqlite, where the multi-process test's workers put theirs too (the
            # schema exists before they start: the engine cannot create it from two processes at once)
            config = MemoryConfig(key_prefix=self.prefix, data_dir=str(tmp_path / "engine"),
                                  ltm_config={"db_path": str(tmp_path / "ltm.sqlite")})
            self.api = AgentMemoryAPI(config, redis_client=client)
            self._apis.append(self.api)

    def open(self, **options: Any) -> MemoryManager:
        """A new manager on this backend's store (the in-memory kind has one store per manager)."""
        kind = self.kind
        if kind == "memory":
            manager: MemoryManager = InMemoryManager(**options)
        elif kind == "redis":
            manager = RedisMemoryManager(TEST_REDIS_URL, key_prefix=self.prefix, **options)
        elif kind == "redis-embedded":
            client = fakeredis.FakeAsyncRedis(server=self._fake_server)
            manager = RedisMemoryManager(client=client, key_prefix=self.prefix, **options)
        elif kind == "sqlite":
            url = f"sqlite:///{self.tmp_path / 'conversations.sqlite'}"
            manager = DatabaseMemoryManager(url, namespace=self.prefix, **options)
        elif kind == "postgresql":
            engine = self._request.getfixturevalue("postgres_engine")
            manager = DatabaseMemoryManager(engine, namespace=self.prefix, **options)
        else:
            head = RedisMemoryManager(TEST_REDIS_URL, key_prefix=self.prefix) if kind == "tiered-redis" else None
            manager = TieredMemoryManager(self.api, head=head, **options)  # type: ignore[arg-type]
        self._managers.append(manager)
        return manager

    async def close(self) -> None:
        for manager in self._managers:
            await manager.close()
        for api in self._apis:
            api.close()
        if self._sync_redis is not None:
            keys = list(self._sync_redis.scan_iter(match=f"{self.prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                self._sync_redis.delete(*keys[start : start + 500])
            self._sync_redis.close()


class ScriptedLLM:
    """A deterministic stand-in for a model: appends the new message to the memory as a sentence."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, str]]] = []

    async def chat(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(messages)
        prompt = messages[-1]["content"]
        current = prompt.split("Current working memory:\n", 1)[1].split("\n\nNew message", 1)[0]
        message = prompt.rsplit("):\n", 1)[1]
        summary = message if current.startswith("(empty") else f"{current} | {message}"
        return {"llm_response": summary, "usage": {"total_tokens": len(summary.split())}}
