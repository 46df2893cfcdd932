"""tiermem's MCP tools through the SDK's own client: ``tiermem mcp`` on stdio (a subprocess on the
embedded engine and on the test Redis), and the streamable HTTP endpoint as the REST app mounts it
(a FastAPI app including ``mcp_router``, wrapped in BearerAuth with a tokens table) under uvicorn on a
loopback port: the tool list, each tool's round trip, pages, errors, tiers and bounds."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from memory import AgentMemoryAPI, MemoryConfig, RedisShortTermMemory
from memory.cli import main
from memory.server.auth import LOCAL, TokenTable, current_principal
from memory.server.bearer import BearerAuth
from memory.server.mcp import build_server, mcp_router
from support import TEST_REDIS_URL, real_redis
from team_support import delete_prefix

TOOLS = ["store_memory", "search_memories", "get_memory", "memories_between", "stash", "retrieve", "add_task",
         "claim_task", "complete_task", "send_signal", "receive_signals", "stage_pattern", "promote_pattern",
         "find_patterns"]
STEWARD, OBSERVER, SCOUT, LEAD, BETA = "steward-token", "observer-token", "scout-token", "lead-token", "beta-token"
TOKENS = [
    {"token": STEWARD, "tier": "steward"},
    {"token": OBSERVER, "tier": "observer"},
    {"token": SCOUT, "tier": "contributor", "agent": "scout", "team": "alpha"},
    {"token": LEAD, "tier": "validator", "agent": "lead", "team": "alpha"},
    {"token": BETA, "tier": "contributor", "team": "beta"},
]


# -- clients ------------------------------------------------------------------------------------------
async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The text of the tool error the call answers; a tiermem error also as {"error", "message"}."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = result.content[0].text
    if result.structured_content is not None:
        error = result.structured_content
        assert text == f"{error['error']}: {error['message']}"
    return text


def stdio(*options: str, cwd: Path, **env: str) -> StdioServerParameters:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("TIERMEM_TOKEN")}
    return StdioServerParameters(command=sys.executable, args=["-m", "memory.cli", "mcp", *options],
                                 env={**environ, "HF_HUB_OFFLINE": "1", **env}, cwd=str(cwd))


@asynccontextmanager
async def over_http(url: str, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


def words_model(texts: list[str]) -> np.ndarray:
    """A deterministic text model: each word hashed into one of 63 buckets."""
    rows = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in zip(rows, texts):
        for word in re.findall(r"\w+", text.lower()):
            row[zlib.crc32(word.encode()) % 63] += 1.0
        row[63] = 0.01
    return rows


# -- stdio ----------------------------------------------------------------------------------------------
async def every_tool_round_trip(client: Client) -> None:
    """Each tool once, as the local steward (team calls act as "local" unless told)."""
    assert [tool.name for tool in (await client.list_tools()).tools] == TOOLS
    run = uuid.uuid4().hex[:8]
    stored = await call(client, "store_memory", agent_id="walker", data={"position": [1, 2], "mood": "calm"},
                        step_number=7, memory_type="state", priority=0.5)
    memory = await call(client, "get_memory", agent_id="walker", memory_id=stored["memory_id"])
    assert (memory["contents"], memory["step_number"], memory["metadata"]["memory_type"]) == (
        {"position": [1, 2], "mood": "calm"}, 7, "state")
    assert "embeddings" not in memory
    await call(client, "store_memory", agent_id="walker", data={"said": "hello"}, step_number=8, memory_type="interaction")
    window = await call(client, "memories_between", agent_id="walker", start_step=0, end_step=10)
    assert [(m["step_number"], m["metadata"]["memory_type"]) for m in window["memories"]] == [(7, "state"), (8, "interaction")]
    assert window["next_offset"] is None and window["failed_tiers"] == []
    found = await call(client, "search_memories", agent_id="walker", attributes={"mood": "calm"})
    assert [m["memory_id"] for m in found["memories"]] == [stored["memory_id"]]

    stashed = await call(client, "stash", team_id="crew", key="notes", value={"n": 1}, ttl=60)
    assert stashed == {"agent_id": "local", "key": "notes"}
    assert (await call(client, "retrieve", team_id="crew", key="notes"))["value"] == {"n": 1}
    assert (await call(client, "retrieve", team_id="crew", key="notes", agent_id="nobody"))["found"] is False

    task_id = f"task-{run}"
    assert await call(client, "add_task", team_id="crew", task_id=task_id, task_type="review", priority=9) == {"task_id": task_id}
    claimed = (await call(client, "claim_task", team_id="crew", task_type="review", agent_id="reviewer"))["task"]
    assert (claimed["task_id"], claimed["assigned_to"], claimed["status"]) == (task_id, "reviewer", "claimed")
    assert (await call(client, "claim_task", team_id="crew", task_type="review"))["task"] is None
    done = await call(client, "complete_task", team_id="crew", task_id=task_id, result={"ok": True}, agent_id="reviewer")
    assert done == {"task_id": task_id, "completed": True}

    sent = await call(client, "send_signal", team_id="crew", signal_type="ping", data={"n": 2}, target_agent="reviewer")
    signals = (await call(client, "receive_signals", team_id="crew", agent_id="reviewer"))["signals"]
    assert [(s["id"], s["sender"], s["data"]) for s in signals] == [(sent["signal_id"], "local", {"n": 2})]
    assert (await call(client, "receive_signals", team_id="crew", agent_id="reviewer"))["signals"] == []

    pattern_id = f"pattern-{run}"
    staged = await call(client, "stage_pattern", team_id="crew", pattern_id=pattern_id, pattern_type="security",
                        name=f"validate-{run}", description="validate at the boundary", confidence=0.9)
    assert staged == {"pattern_id": pattern_id, "staged": True}
    promoted = (await call(client, "promote_pattern", team_id="crew", pattern_id=pattern_id))["pattern"]
    assert (promoted["pattern_id"], promoted["status"], promoted["agent_id"]) == (pattern_id, "promoted", "local")
    library = await call(client, "find_patterns", team_id="crew", name=f"validate-{run}")
    assert [p["pattern_id"] for p in library["patterns"]] == [pattern_id] and library["next_offset"] is None


@pytest.mark.parametrize("engine", ["embedded", "redis"])
async def test_tiermem_mcp_on_stdio_answers_every_tool(engine, tmp_path):
    options = ["--data-dir", str(tmp_path / "data")]
    prefix = f"t{uuid.uuid4().hex[:12]}"
    redis_client = real_redis() if engine == "redis" else None
    options += ["--redis-url", TEST_REDIS_URL, "--prefix", prefix] if redis_client else ["--redis-url", ""]
    try:
        async with Client(stdio(*options, cwd=tmp_path)) as client:
            await every_tool_round_trip(client)
    finally:
        if redis_client is not None:
            delete_prefix(redis_client, prefix)
            redis_client.close()


class StdioPeer:
    """``tiermem mcp`` driven by hand over the initialize handshake, so a test can end it as an MCP
    client does when closing stdin is not enough: with SIGTERM."""

    def __init__(self, params: StdioServerParameters):
        self.process = subprocess.Popen([params.command, *params.args], env=params.env, cwd=params.cwd,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()
        self.ids = itertools.count(1)
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "test", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict[str, Any]) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> Any:
        number = next(self.ids)
        self.send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        answer = json.loads(self.lines.get(timeout=30))
        assert answer["id"] == number and "result" in answer, answer
        return answer["result"]

    def call(self, tool: str, **arguments: Any) -> Any:
        result = self.request("tools/call", {"name": tool, "arguments": arguments})
        assert not result["isError"], result
        return result["structuredContent"]


@pytest.mark.parametrize("engine", ["embedded"])  # what a SIGTERM would lose: the embedded engine's snapshot
async def test_an_observer_token_on_stdio_reads_what_a_terminated_server_stored(engine, tmp_path):
    """The second server opens the data directory the first one left when SIGTERM ended it: what it
    stored is there; as the observer TIERMEM_TOKEN names, the second reads and writes nothing."""
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS))
    options = ["--data-dir", str(tmp_path / "data"), "--redis-url", "", "--tokens", str(tmp_path / "tokens.json")]
    first = StdioPeer(stdio(*options, cwd=tmp_path))
    try:
        first.call("store_memory", agent_id="walker", data={"x": 1}, step_number=1)
        first.call("stash", team_id="crew", key="notes", value="kept", agent_id="walker")
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        first.process.kill()
        first.process.communicate()
    async with Client(stdio(*options, cwd=tmp_path, TIERMEM_TOKEN=OBSERVER)) as client:
        window = await call(client, "memories_between", agent_id="walker", start_step=0, end_step=5)
        assert [m["contents"] for m in window["memories"]] == [{"x": 1}]
        assert (await call(client, "retrieve", team_id="crew", key="notes", agent_id="walker"))["value"] == "kept"
        assert (await refused(client, "store_memory", agent_id="walker", data={"x": 2}, step_number=2)).startswith(
            "AccessDeniedError: store_memory needs access tier CONTRIBUTOR or higher")
        window = await call(client, "memories_between", agent_id="walker", start_step=0, end_step=5)
        assert len(window["memories"]) == 1


def test_tiermem_mcp_refuses_a_token_it_does_not_know_before_it_opens_anything(tmp_path, capsys, monkeypatch):
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS))
    monkeypatch.delenv("TIERMEM_TOKEN", raising=False)
    status = main(["mcp", "--data-dir", str(tmp_path / "data"), "--tokens", str(tmp_path / "tokens.json"),
                   "--token", "not-a-known-token"])
    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    assert err == "tiermem: error: the token given (--token or TIERMEM_TOKEN) is not one of the configured tokens\n"
    monkeypatch.setenv("TIERMEM_TOKEN", SCOUT)
    monkeypatch.delenv("TIERMEM_TOKENS", raising=False)
    assert main(["mcp", "--data-dir", str(tmp_path / "data")]) == 1
    assert capsys.readouterr().err == (
        "tiermem: error: a token was given (--token or TIERMEM_TOKEN) but no tokens are configured "
        "(--tokens FILE or TIERMEM_TOKENS)\n")
    assert not (tmp_path / "data").exists()


# -- streamable HTTP ------------------------------------------------------------------------------------
@dataclass
class Served:
    url: str
    engine: AgentMemoryAPI
    team: RedisShortTermMemory


@pytest.fixture(scope="module", params=["embedded"])
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The REST app's mount of the endpoint (FastAPI including mcp_router) behind BearerAuth, on the
    embedded engine, served by uvicorn in a thread on a free loopback port."""
    data_dir = str(tmp_path_factory.mktemp("mcp-http"))
    engine = AgentMemoryAPI(MemoryConfig(redis_url="", data_dir=data_dir, search_config={"text_model": words_model}))
    team = RedisShortTermMemory(use_mock=True, data_dir=data_dir)
    app = FastAPI()
    app.include_router(mcp_router(engine, team))
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(BearerAuth(app, TokenTable.parse(TOKENS, "the test's tokens")),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield Served(f"http://127.0.0.1:{listening.getsockname()[1]}/mcp", engine, team)
    server.should_exit = True
    thread.join(timeout=20)
    listening.close()
    team.close()
    engine.close()


def test_http_answers_401_without_a_known_token_and_421_to_a_foreign_host(served):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, {"Authorization": "Bearer not-a-known-token"}, {"Authorization": f"Basic {STEWARD}"}):
        answer = httpx.post(served.url, json=hello, headers=headers)
        assert answer.status_code == 401 and answer.json()["error"] == "Unauthorized"
        assert answer.headers["www-authenticate"] == 'Bearer realm="tiermem"'
    rebound = httpx.post(served.url, json=hello, headers={"Authorization": f"Bearer {STEWARD}", "Host": "evil.example",
                                                          "Accept": "application/json, text/event-stream"})
    assert rebound.status_code == 421  # listening on loopback: DNS rebinding protection


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026 protocol (per request), the initialize handshake
async def test_each_call_is_made_by_the_caller_its_token_names(served, mode):
    agent = f"watched-{mode}"
    async with over_http(served.url, OBSERVER, mode) as observer:
        assert [tool.name for tool in (await observer.list_tools()).tools] == TOOLS
        assert await refused(observer, "store_memory", agent_id=agent, data={"x": 1}, step_number=1) == (
            "AccessDeniedError: store_memory needs access tier CONTRIBUTOR or higher; agent 'token 1' has OBSERVER")
        assert (await refused(observer, "stash", team_id="alpha", key="k", value=1)).startswith("AccessDeniedError: stash ")
        assert (await call(observer, "memories_between", agent_id=agent, start_step=0, end_step=9))["memories"] == []
    assert served.engine.retrieve_by_time_range(agent, 0, 9) == []

    async with over_http(served.url, SCOUT, mode) as scout, over_http(served.url, LEAD, mode) as lead:
        answers = await asyncio.gather(*(call(client, "stash", team_id="alpha", key=f"seen-{mode}", value=n)
                                         for n in range(3) for client in (scout, lead)))
        assert [answer["agent_id"] for answer in answers] == ["scout", "lead"] * 3


async def test_tokens_reach_their_agent_and_team_only(served):
    async with over_http(served.url, SCOUT) as scout:
        await call(scout, "store_memory", agent_id="scout", data={"x": 1}, step_number=1)
        assert await refused(scout, "store_memory", agent_id="lead", data={"x": 1}, step_number=1) == (
            "OutOfBoundsError: store_memory on agent 'lead' is refused: this token is bound to agent 'scout'")
        assert (await refused(scout, "memories_between", agent_id="lead", start_step=0, end_step=9)).startswith(
            "OutOfBoundsError: memories_between on agent 'lead'")
        assert await refused(scout, "stash", team_id="beta", key="k", value=1) == (
            "OutOfBoundsError: stash on team 'beta' is refused: this token is bound to team 'alpha'")
        assert (await refused(scout, "claim_task", team_id="alpha", task_type="t", agent_id="lead")).startswith(
            "OutOfBoundsError: claim_task on agent 'lead'")
        staged = await call(scout, "stage_pattern", team_id="alpha", pattern_id="scout-find", pattern_type="routes",
                            name="short-cut", description="the river ford")
        assert staged["staged"] is True
        assert (await refused(scout, "promote_pattern", team_id="alpha", pattern_id="scout-find")).startswith(
            "AccessDeniedError: promote_pattern needs access tier VALIDATOR or higher; agent 'scout' has CONTRIBUTOR")
    async with over_http(served.url, LEAD) as lead:
        promoted = (await call(lead, "promote_pattern", team_id="alpha", pattern_id="scout-find"))["pattern"]
        assert (promoted["agent_id"], promoted["decided_by"]) == ("scout", "lead")
    async with over_http(served.url, BETA) as beta:  # bound to a team, not an agent: acts under its name
        assert (await call(beta, "stash", team_id="beta", key="k", value=1))["agent_id"] == "beta"
        for tool, arguments in (("stash", {"key": "k", "value": 2}), ("send_signal", {"signal_type": "ping"}),
                                ("receive_signals", {})):
            assert await refused(beta, tool, team_id="beta", agent_id="scout", **arguments) == (
                f"AccessDeniedError: {tool} in another agent's name needs access tier STEWARD or higher; "
                "agent 'beta' has CONTRIBUTOR")
        assert await refused(beta, "claim_task", team_id="beta", task_type="t", agent_id="scout") == (
            "AccessDeniedError: AgentCoordinator.claim_task in another agent's name needs access tier STEWARD or "
            "higher; agent 'beta' has CONTRIBUTOR")
        assert await refused(beta, "stage_pattern", team_id="beta", pattern_id="p", pattern_type="t", name="n",
                             description="", agent_id="scout") == (
            "AccessDeniedError: stage a pattern in another agent's name needs access tier VALIDATOR or higher; "
            "agent 'beta' has CONTRIBUTOR")
        assert (await refused(beta, "add_task", team_id="alpha", task_id="x", task_type="t")).startswith(
            "OutOfBoundsError: add_task on team 'alpha'")
    assert served.team.pattern_library.get("scout-find").status == "promoted"
    assert served.engine.retrieve_by_time_range("lead", 0, 9) == []
    assert served.team.retrieve("k", agent_id="scout") is None


async def test_pages_cover_every_answer_once(served):
    agent = "paged"
    served.engine.store_many([{"agent_id": agent, "data": {"n": n, "even": n % 2 == 0}, "step_number": n}
                              for n in range(23)])
    for n in range(7):
        served.team.stage_pattern(pattern_id=f"paged-{n}", pattern_type="paged", name=f"p{n}", description="")
    async with over_http(served.url, STEWARD) as client:
        for n in range(7):
            await call(client, "promote_pattern", team_id="crew", pattern_id=f"paged-{n}")
        pages = {
            "memories_between": ({"agent_id": agent, "start_step": 0, "end_step": 100}, "memories", 5),
            "search_memories": ({"agent_id": agent, "attributes": {"even": True}}, "memories", 4),
            "find_patterns": ({"team_id": "crew", "pattern_type": "paged"}, "patterns", 3),
        }
        seen: dict[str, list[Any]] = {}
        for tool, (arguments, field, limit) in pages.items():
            offset: int | None = 0
            seen[tool] = []
            while offset is not None:
                page = await call(client, tool, **arguments, limit=limit, offset=offset)
                assert len(page[field]) <= limit and (page["next_offset"] is None or len(page[field]) == limit)
                seen[tool] += page[field]
                offset = page["next_offset"]
        best = await call(client, "search_memories", agent_id=agent, similar_to={"n": 10}, limit=1)
        after = await call(client, "search_memories", agent_id=agent, similar_to={"n": 10}, limit=2, offset=1)
    assert [m["step_number"] for m in seen["memories_between"]] == list(range(23))
    assert [m["step_number"] for m in seen["search_memories"]] == list(range(0, 23, 2))
    assert [p["pattern_id"] for p in seen["find_patterns"]] == [f"paged-{n}" for n in range(7)]
    assert ([m["step_number"] for m in best["memories"]], best["next_offset"]) == ([10], 1)
    assert ({m["step_number"] for m in after["memories"]}, after["next_offset"]) == ({9, 11}, 3)


async def test_text_search_ranks_what_is_about_the_text_first(served):
    agent = "talker"
    async with over_http(served.url, STEWARD) as client:
        for step, said in enumerate(["do you have wood to trade", "the storm destroyed our crops",
                                     "we crossed the old bridge at dawn", "wolves near the river"]):
            await call(client, "store_memory", agent_id=agent, data={"content": said}, step_number=step,
                       memory_type="interaction")
        found = await call(client, "search_memories", agent_id=agent, text="the bridge", limit=2)
    assert found["memories"][0]["contents"] == {"content": "we crossed the old bridge at dawn"}
    assert len(found["memories"]) == 2 and found["next_offset"] == 2


async def test_without_a_team_memory_the_server_has_the_memory_tools_alone(served):
    reset = current_principal.set(LOCAL)  # in-process, the caller is the test's own
    try:
        async with Client(build_server(served.engine, None)) as client:
            assert [tool.name for tool in (await client.list_tools()).tools] == TOOLS[:4]
            stored = await call(client, "store_memory", agent_id="solo", data={"x": 1}, step_number=1)
    finally:
        current_principal.reset(reset)
    assert served.engine.get_memory("solo", stored["memory_id"])["contents"] == {"x": 1}


BAD_CALLS = [  # a tool, its arguments, the error it answers
    ("store_memory", {"agent_id": "errs", "data": {"x": 1}, "step_number": 1, "priority": 5.0},
     "InvalidInputError: priority must be between 0 and 1, got 5.0"),
    ("store_memory", {"agent_id": "errs", "data": {"x": 1}, "step_number": -1},
     "InvalidInputError: step_number must be between 0 and 2**53, got -1"),
    ("store_memory", {"agent_id": "bad agent", "data": {"x": 1}, "step_number": 1},
     "InvalidInputError: agent_id 'bad agent' contains ' '; allowed are letters, digits and _ . : @ / + = -"),
    ("memories_between", {"agent_id": "errs", "start_step": 5, "end_step": 2},
     "InvalidInputError: start_step 5 is after end_step 2"),
    ("memories_between", {"agent_id": "errs", "start_step": 0, "end_step": 2, "limit": 0},
     "InvalidInputError: limit must be between 1 and 100, got 0"),
    ("get_memory", {"agent_id": "errs", "memory_id": "errs-none-1"},
     "MemoryNotFoundError: agent 'errs' has no memory 'errs-none-1'"),
    ("search_memories", {"agent_id": "errs"},
     "InvalidInputError: search_memories needs text, attributes or similar_to (memories_between lists memories by step)"),
    ("search_memories", {"agent_id": "errs", "text": "x", "attributes": {"x": 1}},
     "InvalidInputError: text search cannot be combined with attributes or similar_to: search by text alone, "
     "or by attributes and similar_to"),
    ("stash", {"team_id": "errs", "key": "k", "value": 1, "ttl": -1},
     "InvalidInputError: ttl must be a number of seconds above 0 up to 31622400 (366 days), got -1.0"),
    ("add_task", {"team_id": "errs", "task_id": "t1", "task_type": "x", "priority": 5000},
     "InvalidInputError: priority must be between 0 and 1000, got 5000"),
    ("complete_task", {"team_id": "errs", "task_id": "never-added"}, "NotFoundError: team 'errs' has no task 'never-added'"),
    ("receive_signals", {"team_id": "errs", "timeout": 60},
     "InvalidInputError: timeout must be at most 30 seconds over MCP, got 60.0"),
    ("stage_pattern", {"team_id": "errs", "pattern_id": "p", "pattern_type": "x", "name": "n", "description": "",
                       "confidence": 2.0}, "InvalidInputError: confidence must be at most 1.0, got 2.0"),
]


async def test_bad_arguments_are_tool_errors_that_change_nothing(served):
    async with over_http(served.url, STEWARD) as client:
        for tool, arguments, error in BAD_CALLS:
            assert await refused(client, tool, **arguments) == error, tool
        schema = await refused(client, "store_memory", agent_id="errs", data="not an object", step_number="one")
        assert "validation error" in schema and "step_number" in schema and "data" in schema
        await call(client, "add_task", team_id="errs", task_id="t2", task_type="x")
        assert await refused(client, "add_task", team_id="errs", task_id="t2", task_type="x") == (
            "DuplicateTaskError: team 'errs' already has a task 't2'")
        assert await refused(client, "complete_task", team_id="errs", task_id="t2") == (
            "TaskOwnershipError: task 't2' is not claimed (pending, completed, or its lease lapsed)")
        assert (await call(client, "memories_between", agent_id="errs", start_step=0, end_step=9))["memories"] == []
        assert (await call(client, "retrieve", team_id="errs", key="k"))["found"] is False
        assert (await call(client, "claim_task", team_id="errs", task_type="x"))["task"]["task_id"] == "t2"
        assert (await call(client, "find_patterns", team_id="errs", pattern_type="x"))["patterns"] == []
