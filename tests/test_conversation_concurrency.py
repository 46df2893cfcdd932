"""Concurrent turns of one conversation lose no update: coroutines, several managers, several processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conversation_backends import Backend
from memory.conversation import AgentInput, TieredMemoryManager, WorkingMemoryAgent, WorkingMemoryPolicy
from support import real_redis

WORKER = Path(__file__).with_name("conversation_worker.py")
UNBOUNDED = WorkingMemoryPolicy(max_chars=1_000_000, keep_turns=100_000)


class SlowModel:
    """Appends each message to the memory after a short think, widening the read-modify-write window."""

    async def chat(self, messages):
        await asyncio.sleep(0.002)
        prompt = messages[-1]["content"]
        current = prompt.split("Current working memory:\n", 1)[1].split("\n\nNew message", 1)[0]
        message = prompt.rsplit("):\n", 1)[1]
        return {"llm_response": message if current.startswith("(empty") else f"{current}\n{message}", "usage": {}}


async def assert_every_turn_landed(manager, conversation_id: str, messages: list[str], llm: bool) -> None:
    memory = await manager.get(conversation_id)
    assert memory.turn_count == len(messages)
    assert [t.number for t in memory.turns] == list(range(1, len(messages) + 1))
    assert sorted(t.message for t in memory.turns) == sorted(messages)
    lines = memory.working_memory.splitlines()
    written = lines if llm else [line.split("] ", 1)[1] for line in lines]
    assert sorted(written) == sorted(messages)  # each message exactly once in the working memory
    if isinstance(manager, TieredMemoryManager):
        archived = await manager.history(conversation_id)
        assert [t.number for t in archived] == list(range(1, len(messages) + 1))
        assert sorted(t.message for t in archived) == sorted(messages)


@pytest.mark.parametrize("llm", [False, True], ids=["offline", "llm"])
async def test_many_concurrent_turns_on_one_manager_all_land(backend: Backend, llm: bool):
    agent = WorkingMemoryAgent(SlowModel() if llm else None, backend.open(), policy=UNBOUNDED)
    messages = [f"turn-{i}" for i in range(60)]
    statuses = await asyncio.gather(*(agent.process(AgentInput(m, {"conversation_id": "busy"})) for m in messages))
    assert statuses == ["success"] * len(messages)
    await assert_every_turn_landed(agent.memory_manager, "busy", messages, llm)


async def test_concurrent_turns_through_several_managers_on_one_store_all_land(shared_backend: Backend):
    managers = [shared_backend.open() for _ in range(4)]
    agents = [WorkingMemoryAgent(SlowModel(), manager, policy=UNBOUNDED) for manager in managers]
    messages = [f"m{a}-{i}" for a in range(4) for i in range(12)]
    statuses = await asyncio.gather(
        *(agents[int(m[1])].process(AgentInput(m, {"conversation_id": "shared"})) for m in messages)
    )
    assert statuses == ["success"] * len(messages)
    assert sum(manager.conflicts for manager in managers) > 0  # the managers did race: the CAS decided
    await assert_every_turn_landed(managers[0], "shared", messages, llm=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["redis", "tiered-redis"])
async def test_concurrent_turns_from_several_processes_all_land(kind, request, tmp_path):
    store = Backend(kind, request, tmp_path)  # real Redis: fails under TIERMEM_REQUIRE_SERVICES=1 if absent
    client = real_redis()
    processes, turns = 4, 20
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), kind, store.prefix, "crowded", str(w), str(turns), str(tmp_path)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for w in range(processes)
        ]
        deadline = time.monotonic() + 60
        while int(client.get(f"{store.prefix}:ready") or 0) < processes:
            assert time.monotonic() < deadline, "the workers did not get ready"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers if w.poll() is not None]
            await asyncio.sleep(0.05)
        client.rpush(f"{store.prefix}:go", *["go"] * processes)
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
        assert all(report["statuses"] == ["success"] * turns for report in reports)
        assert sum(report["conflicts"] for report in reports) > 0  # the processes did race
        messages = [f"w{w}-t{i}" for w in range(processes) for i in range(turns)]
        await assert_every_turn_landed(store.open(), "crowded", messages, llm=True)
    finally:
        client.close()
        await store.close()
