"""The REST server (memory/server/app.py) through FastAPI's TestClient: every route's happy path
(the core ones on both Redis engines, the rest embedded), the token matrix (each refusal changes
nothing), bad bodies, pagination and concurrent claims. ``tiermem serve`` is tests/test_server_cli.py's."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from memory import AccessTier, AgentCoordinator, AgentCredentials, AgentMemoryAPI, RedisShortTermMemory
from memory.server.app import create_app
from memory.server.auth import TokenTable

TOKENS = TokenTable.parse([
    {"token": "steward-token", "tier": "steward"},
    {"token": "observer-token", "tier": "observer"},
    {"token": "contributor-token", "tier": "contributor"},
    {"token": "validator-token", "tier": "validator"},
    {"token": "agent-a-token", "tier": "contributor", "agent": "agent-a"},
    {"token": "team-x-token", "tier": "contributor", "team": "team-x"},
    {"token": "x-scout-token", "tier": "contributor", "agent": "scout", "team": "team-x"},
], "the REST tests")
STEWARD, OBSERVER, CONTRIBUTOR, VALIDATOR = "steward-token", "observer-token", "contributor-token", "validator-token"
AGENT_A, TEAM_X, X_SCOUT = "agent-a-token", "team-x-token", "x-scout-token"

embedded_only = pytest.mark.parametrize("redis_engine", ["embedded"], indirect=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Server:
    engine: AgentMemoryAPI
    team: RedisShortTermMemory
    client: TestClient

    def get(self, path: str, token: str = OBSERVER, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=bearer(token), **kwargs)

    def post(self, path: str, body: Any = None, token: str = CONTRIBUTOR, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, headers=bearer(token), **kwargs)

    def store(self, agent: str, step: int, data: dict[str, Any] | None = None, memory_type: str = "state") -> str:
        answer = self.post(f"/v1/agents/{agent}/memories", {"memory_type": memory_type, "step_number": step,
                                                             "data": data if data is not None else {"step": step}})
        assert answer.status_code == 201, answer.text
        return answer.json()["memory_id"]


@pytest.fixture
def make_server(make_api: Callable[..., AgentMemoryAPI],
                make_memory: Callable[..., RedisShortTermMemory]) -> Iterator[Callable[..., Server]]:
    clients: list[TestClient] = []

    def build(max_body_bytes: int = 1 << 20, **engine_options: Any) -> Server:
        engine, team = make_api(**engine_options), make_memory()
        client = TestClient(create_app(engine, team, tokens=TOKENS, max_body_bytes=max_body_bytes))
        clients.append(client)
        return Server(engine, team, client)

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


def refused(answer: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error and body["message"], body
    return body


# -- happy paths ------------------------------------------------------------------------------------


def test_memories_stored_read_searched_and_counted(server):
    first = server.store("scout-1", 1, {"position": [1, 2], "health": 0.9})
    server.store("scout-1", 2, {"action_type": "trade", "outcome": "success"}, "action")
    server.store("scout-1", 3, {"position": [5, 5], "health": 0.2})
    listed = server.get("/v1/agents/scout-1/memories").json()
    assert [m["step_number"] for m in listed["memories"]] == [1, 2, 3] and listed["next_offset"] is None
    assert listed["failed_tiers"] == []
    actions = server.get("/v1/agents/scout-1/memories", params={"memory_type": "action"}).json()["memories"]
    assert [m["contents"]["outcome"] for m in actions] == ["success"]
    window = server.get("/v1/agents/scout-1/memories", params={"start_step": 2, "end_step": 3}).json()["memories"]
    assert [m["step_number"] for m in window] == [2, 3]
    one = server.get(f"/v1/agents/scout-1/memories/{first}").json()
    assert one["contents"] == {"position": [1, 2], "health": 0.9} and one["metadata"]["memory_type"] == "state"

    def search(query: dict[str, Any]) -> list[dict[str, Any]]:
        answer = server.post("/v1/agents/scout-1/search", query, token=OBSERVER)
        assert answer.status_code == 200, answer.text
        return answer.json()["memories"]

    assert [m["step_number"] for m in search({"attributes": {"outcome": "success"}})] == [2]
    assert [(m["step_number"], m["distance"]) for m in search({"near": {"center": [1, 2], "radius": 1.0}})] == [(1, 0.0)]
    assert [m["step_number"] for m in search({"near": {"center": [5, 4]}, "limit": 1})] == [3]
    assert search({"similar_to": {"health": 0.25}, "limit": 1})[0]["step_number"] == 3
    assert [m["step_number"] for m in search({"start_step": 2, "memory_type": "state"})] == [3]
    assert server.get("/v1/agents").json() == {"agents": ["scout-1"], "next_offset": None}
    assert server.get("/v1/agents/scout-1/stats").json()["tiers"]["stm"]["count"] == 3
    assert server.get("/v1/stats").json()["agents"] == 1


def test_team_tasks_added_claimed_completed(server):
    team = "/v1/teams/review"
    assert server.post(f"{team}/tasks", {"task_id": "sec-1", "task_type": "security", "priority": 9}).status_code == 201
    server.post(f"{team}/tasks", {"task_id": "sec-2", "task_type": "security", "description": "later"})
    refused(server.post(f"{team}/tasks", {"task_id": "sec-1", "task_type": "security"}), 409, "DuplicateTaskError")
    pending = server.get(f"{team}/tasks").json()
    assert [t["task_id"] for t in pending["tasks"]] == ["sec-1", "sec-2"] and pending["next_offset"] is None
    claimed = server.post(f"{team}/tasks/claim", {"task_type": "security", "agent_id": "auditor"}).json()["task"]
    assert (claimed["task_id"], claimed["assigned_to"], claimed["status"]) == ("sec-1", "auditor", "claimed")
    assert server.post(f"{team}/heartbeat", {"agent_id": "auditor"}).json() == {"agent_id": "auditor"}
    refused(server.post(f"{team}/tasks/sec-1/complete", {"result": 1, "agent_id": "other"}), 409, "TaskOwnershipError")
    refused(server.get(f"{team}/tasks/sec-1/result"), 404, "NotFoundError")
    done = server.post(f"{team}/tasks/sec-1/complete", {"result": {"warnings": 2}, "agent_id": "auditor"})
    assert done.json() == {"task_id": "sec-1", "completed": True}
    result = server.get(f"{team}/tasks/sec-1/result").json()
    assert (result["result"], result["agent_id"], result["task_type"]) == ({"warnings": 2}, "auditor", "security")
    server.post(f"{team}/tasks/claim", {"task_type": "security", "agent_id": "auditor"})
    assert server.post(f"{team}/tasks/claim", {"task_type": "security", "agent_id": "auditor"}).json() == {"task": None}
    refused(server.post(f"{team}/tasks/nope/complete", {"agent_id": "auditor"}), 404, "NotFoundError")


@embedded_only
def test_working_memory_signals_and_sessions(server):
    stashed = server.post("/v1/teams/team-x/working", {"key": "findings", "value": {"critical": 0}, "ttl": 60},
                          token=X_SCOUT)
    assert stashed.json() == {"agent_id": "scout", "key": "findings"}
    read = server.get("/v1/teams/team-x/working/scout/findings").json()
    assert read == {"agent_id": "scout", "key": "findings", "value": {"critical": 0}}
    refused(server.get("/v1/teams/team-y/working/scout/findings"), 404, "NotFoundError")  # another team's namespace
    refused(server.get("/v1/teams/team-x/working/scout/other"), 404, "NotFoundError")
    auditor = AgentCredentials("auditor", AccessTier.OBSERVER)
    assert server.team.retrieve("findings", auditor, "team-x/scout") == {"critical": 0}  # the layer's name for it

    sent = server.post("/v1/teams/team-x/signals", {"signal_type": "review_done", "target_agent": "scout",
                                                     "data": {"passed": True}, "agent_id": "lead"})
    assert sent.status_code == 201 and sent.json()["signal_id"]
    received = server.get("/v1/teams/team-x/signals", token=X_SCOUT, params={"signal_type": "review_done"}).json()
    assert [(s["sender"], s["target"], s["data"]) for s in received["signals"]] == [("lead", "scout", {"passed": True})]
    assert server.get("/v1/teams/team-x/signals", token=X_SCOUT).json() == {"signals": []}  # each once

    opened = server.post("/v1/teams/team-x/sessions", {"session_id": "pr-42", "purpose": "Review PR #42"},
                         token=X_SCOUT).json()
    assert (opened["session_id"], opened["purpose"], opened["participants"]) == ("pr-42", "Review PR #42", ["scout"])
    shared = server.client.put("/v1/teams/team-x/sessions/pr-42/shared/scope", json={"value": {"files": ["auth.py"]}},
                               headers=bearer(X_SCOUT))
    assert shared.json() == {"session_id": "pr-42", "key": "scope"}
    value = server.get("/v1/teams/team-x/sessions/pr-42/shared/scope").json()["value"]
    assert value == {"files": ["auth.py"]}
    assert server.get("/v1/teams/team-x/sessions/pr-42").json()["shared_keys"] == ["scope"]
    refused(server.get("/v1/teams/team-x/sessions/pr-42/shared/none"), 404, "NotFoundError")
    refused(server.get("/v1/teams/team-x/sessions/nope"), 404, "NotFoundError")
    put = server.client.put("/v1/teams/team-x/sessions/nope/shared/k", json={"value": 1}, headers=bearer(X_SCOUT))
    refused(put, 404, "NotFoundError")
    refused(server.get("/v1/teams/team-x/sessions/nope"), 404, "NotFoundError")  # the refused share opened none


@embedded_only
def test_patterns_staged_promoted_rejected_found(server):
    patterns = "/v1/teams/team-x/patterns"
    for pattern_id in ("validate", "retry"):
        staged = server.post(patterns, {"pattern_id": pattern_id, "pattern_type": "security", "name": pattern_id,
                                        "description": "at the boundary", "confidence": 0.9, "agent_id": "scout"})
        assert staged.status_code == 201 and staged.json() == {"pattern_id": pattern_id, "staged": True}
    listed = server.get(f"{patterns}/staged").json()
    assert [(p["pattern_id"], p["agent_id"]) for p in listed["patterns"]] == [("validate", "scout"), ("retry", "scout")]
    assert server.get("/v1/teams/team-y/patterns/staged").json()["patterns"] == []
    refused(server.post(f"{patterns}/validate/promote", {"agent_id": "scout"}), 403, "AccessDeniedError")
    assert len(server.get(f"{patterns}/staged").json()["patterns"]) == 2  # the refusal changed nothing
    promoted = server.post(f"{patterns}/validate/promote", {"agent_id": "lead"}, token=VALIDATOR).json()
    assert (promoted["pattern_id"], promoted["status"], promoted["decided_by"]) == ("validate", "promoted", "lead")
    rejected = server.post(f"{patterns}/retry/reject", {"reason": "too broad", "agent_id": "lead"}, token=VALIDATOR)
    assert rejected.json() == {"pattern_id": "retry", "rejected": True}
    assert server.get(f"{patterns}/staged").json()["patterns"] == []
    found = server.get(patterns, params={"pattern_type": "security"}).json()["patterns"]
    assert [(p["pattern_id"], p["agent_id"]) for p in found] == [("validate", "scout")]
    assert server.get("/v1/teams/team-y/patterns").json()["patterns"] == []
    again = server.post(patterns, {"pattern_id": "validate", "pattern_type": "security", "name": "v", "agent_id": "scout"})
    refused(again, 409, "ConflictError")
    refused(server.post(f"{patterns}/retry/promote", {"agent_id": "lead"}, token=VALIDATOR), 404, "NotFoundError")


@embedded_only
def test_the_steward_maintains_and_deletes(server):
    for step in range(4):
        server.store("old", step)
    refused(server.post("/v1/maintenance", {"agent_id": "old"}), 403, "AccessDeniedError")
    report = server.post("/v1/maintenance", {"agent_id": "old"}, token=STEWARD)
    assert report.status_code == 200 and "moved" in report.json()
    assert server.post("/v1/maintenance", token=STEWARD).status_code == 200  # every agent with work
    refused(server.client.delete("/v1/agents/old/memories", headers=bearer(CONTRIBUTOR)), 403, "AccessDeniedError")
    assert len(server.engine.retrieve_by_time_range("old", 0, 10)) == 4
    assert server.client.delete("/v1/agents/old/memories", headers=bearer(STEWARD)).json() == {"deleted": 4}
    refused(server.get("/v1/agents/old/memories"), 404, "MemoryNotFoundError")


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic text model: one bucket a word (hashed), no torch needed."""
    rows = np.zeros((len(texts), 32), dtype=np.float32)
    for row, text in zip(rows, texts):
        for word in text.lower().split():
            row[zlib.crc32(word.encode()) % 31] += 1.0
        row[31] = 0.01
    return rows


@embedded_only
def test_a_text_search(make_server):
    server = make_server(search_config={"text_model": bag_of_words})
    for step, note in enumerate(["the river bridge", "a market at night", "stone and wood"]):
        server.store("talker", step, {"content": note}, "interaction")
    found = server.post("/v1/agents/talker/search", {"text": "market", "limit": 1}).json()["memories"]
    assert [m["contents"]["content"] for m in found] == ["a market at night"]
    mixed = server.post("/v1/agents/talker/search", {"text": "market", "start_step": 1})
    assert "memory_type only" in refused(mixed, 400, "InvalidInputError")["message"]


# -- tokens -------------------------------------------------------------------------------------------


@embedded_only
def test_who_may_do_what(server):
    server.store("agent-b", 1)
    memory = {"memory_type": "state", "data": {"x": 1}, "step_number": 5}
    no_token = server.client.post("/v1/agents/agent-b/memories", json=memory)
    assert refused(no_token, 401, "Unauthorized") and no_token.headers["www-authenticate"].startswith("Bearer")
    refused(server.client.get("/v1/agents", headers=bearer("not-a-known-token")), 401, "Unauthorized")
    refused(server.client.get("/v1/agents", headers={"Authorization": "Basic c2VjcmV0"}), 401, "Unauthorized")
    for public in ("/v1/health", "/openapi.json", "/explorer/"):
        assert server.client.get(public).status_code == 200, public
    refused(server.post("/v1/agents/agent-b/memories", memory, token=OBSERVER), 403, "AccessDeniedError")

    # a token bound to agent-a: its own memories, nobody else's (the principal reaches the worker thread)
    assert server.post("/v1/agents/agent-a/memories", memory, token=AGENT_A).status_code == 201
    assert len(server.get("/v1/agents/agent-a/memories", token=AGENT_A).json()["memories"]) == 1
    refused(server.get("/v1/agents/agent-b/memories", token=AGENT_A), 403, "OutOfBoundsError")
    refused(server.post("/v1/agents/agent-b/memories", memory, token=AGENT_A), 403, "OutOfBoundsError")
    refused(server.post("/v1/agents/agent-b/search", {}, token=AGENT_A), 403, "OutOfBoundsError")
    refused(server.get("/v1/stats", token=AGENT_A), 403, "OutOfBoundsError")
    assert server.get("/v1/agents", token=AGENT_A).json()["agents"] == ["agent-a"]
    assert [m["step_number"] for m in server.engine.retrieve_by_time_range("agent-b", 0, 100)] == [1]

    # a token bound to team-x: that team only; bound to an agent too, it acts as that agent
    task = {"task_id": "t1", "task_type": "build"}
    refused(server.post("/v1/teams/team-y/tasks", task, token=TEAM_X), 403, "OutOfBoundsError")
    refused(server.post("/v1/teams/team-y/tasks/claim", {"task_type": "build", "agent_id": "x"}, token=TEAM_X),
            403, "OutOfBoundsError")
    refused(server.get("/v1/teams/team-y/tasks", token=X_SCOUT), 403, "OutOfBoundsError")
    assert AgentCoordinator(server.team, "team-y").get_pending_tasks() == []
    assert server.post("/v1/teams/team-x/tasks", task, token=TEAM_X).status_code == 201
    refused(server.post("/v1/teams/team-x/tasks/claim", {"task_type": "build", "agent_id": "other"}, token=X_SCOUT),
            403, "OutOfBoundsError")
    needs = server.post("/v1/teams/team-x/tasks/claim", {"task_type": "build"}, token=TEAM_X)
    assert "agent_id" in refused(needs, 400, "InvalidInputError")["message"]
    assert [t.task_id for t in AgentCoordinator(server.team, "team-x").get_pending_tasks()] == ["t1"]
    claimed = server.post("/v1/teams/team-x/tasks/claim", {"task_type": "build"}, token=X_SCOUT).json()["task"]
    assert claimed["assigned_to"] == "scout"
    refused(server.post("/v1/teams/team-x/working", {"key": "k", "value": 1, "agent_id": "a"}, token=OBSERVER),
            403, "AccessDeniedError")
    assert server.team.retrieve("k", AgentCredentials("auditor", AccessTier.OBSERVER), "team-x/a") is None


# -- bad requests -------------------------------------------------------------------------------------


@embedded_only
def test_bad_requests_get_a_clear_4xx_and_change_nothing(make_server):
    server = make_server(max_body_bytes=4096)
    path = "/v1/agents/agent-1/memories"
    raw = {"content-type": "application/json", **bearer(CONTRIBUTOR)}
    refused(server.client.post(path, content=b'{"memory_type": "state",', headers=raw), 400, "MalformedJSON")
    for number in (b"NaN", b"Infinity", b"1e999"):
        body = b'{"memory_type": "state", "data": {"x": %s}, "step_number": 1}' % number
        refused(server.client.post(path, content=body, headers=raw), 400, "MalformedJSON")
    good = {"memory_type": "state", "data": {"x": 1}, "step_number": 1}
    for field, value in (("step_number", "1"), ("step_number", -1), ("step_number", True), ("data", [1]),
                         ("memory_type", "dream"), ("priority", 2), ("embedding", "fast"), ("surprise", 1)):
        answer = refused(server.post(path, {**good, field: value}), 422, "ValidationError")
        assert field in answer["message"], answer
    refused(server.post(path, {**good, "embedding": [0.5, 0.5]}), 400, "InvalidInputError")  # not the index's dimension
    refused(server.post(path, {**good, "data": {"n": 2**70}}), 400, "InvalidInputError")
    refused(server.post("/v1/agents/no%20spaces/memories", good), 422, "ValidationError")
    big = {**good, "data": {"text": "x" * 5000}}
    refused(server.post(path, big), 413, "ContentTooLarge")
    chunks = iter([b'{"memory_type": "state", "data": {"text": "', b"x" * 3000, b"x" * 3000, b'"}, "step_number": 1}'])
    refused(server.client.post(path, content=chunks, headers=raw), 413, "ContentTooLarge")  # no Content-Length
    refused(server.post("/v1/agents/agent-1/search", {"near": {"center": [1]}}, token=OBSERVER), 422, "ValidationError")
    refused(server.get(path, params={"start_step": 5, "end_step": 2}), 400, "InvalidInputError")
    refused(server.get("/v1/no/such/route"), 404, "NotFound")
    refused(server.client.put(path, json=good, headers=bearer(CONTRIBUTOR)), 405, "MethodNotAllowed")
    assert server.engine.list_agents() == []

    for read in (server.get(path), server.get(f"{path}/agent-1-x-1"), server.get("/v1/agents/agent-1/stats"),
                 server.post("/v1/agents/agent-1/search", {}, token=OBSERVER)):
        assert "unknown agent" in refused(read, 404, "MemoryNotFoundError")["message"]
    server.store("agent-1", 1)
    refused(server.get(f"{path}/agent-1-x-1"), 404, "MemoryNotFoundError")
    assert server.get(path).json()["memories"][0]["contents"] == {"step": 1}


# -- pages --------------------------------------------------------------------------------------------


def pages(server: Server, path: str, name: str, limit: int, method: str = "get", body: Any = None) -> list[list[Any]]:
    """Every page of a listing, checking each page's next_offset on the way."""
    found, offset = [], 0
    while offset is not None:
        if method == "get":
            answer = server.get(path, params={"limit": limit, "offset": offset})
        else:
            answer = server.post(path, {**body, "limit": limit, "offset": offset}, token=OBSERVER)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found.append(page[name])
        assert page["next_offset"] in (None, offset + limit)
        offset = page["next_offset"]
    return found


def test_pages_are_never_short_and_never_repeat(server):
    ids = [server.store("pager", step, {"parity": step % 2}) for step in range(23)]
    listed = pages(server, "/v1/agents/pager/memories", "memories", 5)
    assert [len(page) for page in listed] == [5, 5, 5, 5, 3]
    assert [m["memory_id"] for page in listed for m in page] == ids
    evens = pages(server, "/v1/agents/pager/search", "memories", 4, "post", {"attributes": {"parity": 0}})
    assert [len(page) for page in evens] == [4, 4, 4]
    assert [m["step_number"] for page in evens for m in page] == list(range(0, 23, 2))
    exact = pages(server, "/v1/agents/pager/memories", "memories", 23)
    assert [len(page) for page in exact] == [23]  # a full last page says so: no empty page after it
    refused(server.get("/v1/agents/pager/memories", params={"limit": 0}), 422, "ValidationError")
    refused(server.get("/v1/agents/pager/memories", params={"limit": 1001}), 422, "ValidationError")


@embedded_only
def test_every_listing_pages(server):
    for agent in range(7):
        server.store(f"agent-{agent}", 1)
    assert [len(page) for page in pages(server, "/v1/agents", "agents", 3)] == [3, 3, 1]
    for number in range(5):
        server.post("/v1/teams/pages/tasks", {"task_id": f"t{number}", "task_type": "any"})
    tasks = pages(server, "/v1/teams/pages/tasks", "tasks", 2)
    assert [t["task_id"] for page in tasks for t in page] == [f"t{n}" for n in range(5)]
    for number in range(3):
        server.post("/v1/teams/pages/patterns", {"pattern_id": f"p{number}", "pattern_type": "kind",
                                                  "name": f"p{number}", "agent_id": "scout"})
    staged = pages(server, "/v1/teams/pages/patterns/staged", "patterns", 2)
    assert [p["pattern_id"] for page in staged for p in page] == ["p0", "p1", "p2"]


# -- concurrency --------------------------------------------------------------------------------------


def test_concurrent_claims_over_http_never_give_a_task_twice(server):
    team, tasks, workers = "/v1/teams/race", 30, 6
    for number in range(tasks):
        server.post(f"{team}/tasks", {"task_id": f"job-{number}", "task_type": "work"})
    claims: dict[str, list[str]] = {}
    start = threading.Barrier(workers, timeout=30)

    def work(agent: str) -> None:
        # six threads on one app's client at once: one lifespan (the MCP endpoint's session manager runs once per app)
        start.wait()
        mine = claims.setdefault(agent, [])
        while True:
            answer = server.client.post(f"{team}/tasks/claim", json={"task_type": "work", "agent_id": agent},
                                        headers=bearer(CONTRIBUTOR))
            assert answer.status_code == 200, answer.text
            if answer.json()["task"] is None:
                return
            mine.append(answer.json()["task"]["task_id"])

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [task for claimed in claims.values() for task in claimed]
    assert sorted(everything) == sorted(f"job-{n}" for n in range(tasks))  # each once, none lost
    assert len(claims) == workers
