"""SIGKILL of an embedded engine (fakeredis in-process, snapshotted to its data directory).

The child stores memories, closes cleanly or not, stores more and maintains them into LTM with
small tier limits, says so, and sleeps; the test SIGKILLs it there and opens the same data
directory. Memories written after the last snapshot may be lost (the snapshot is the embedded
Redis's only durability, and the README says so), but what survives must be one consistent truth:
every query kind names exactly the memories get_memory finds, statistics count each once, and
every memory stored before a clean close is still there (DESIGN: closing loses nothing).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fault_support import every_query_kind
from memory import AgentMemoryAPI
from memory.config import MemoryConfig

pytestmark = pytest.mark.slow

PREFIX, AGENT = "kill", "solo"
ATTRIBUTES = {"probe.run": "embedded"}  # every memory the child stores has it

CHILD = r"""
import json, sys, time
from memory.config import MemoryConfig
from memory import AgentMemoryAPI

data_dir, plan = sys.argv[1], sys.argv[2].split(",")

def open_engine():
    return AgentMemoryAPI(MemoryConfig(
        redis_url="", data_dir=data_dir, key_prefix="kill", cleanup_interval=1_000_000,
        stm_config={"memory_limit": 20}, im_config={"memory_limit": 40},
        ltm_config={"dictionary_samples": 30}, search_config={"text_embedding": "off", "state_vectors": True}))

api, stored, closes = open_engine(), 0, 0
for step in plan:
    if step == "store":  # 100 memories, each reported once store_many returned
        items = [{"agent_id": "solo", "step_number": i, "priority": (i % 10) / 10,
                  "data": {"probe": {"run": "embedded", "i": i}, "position": [float(i % 13), float(i // 13)],
                           "note": "lorem " * (i % 5)}}
                 for i in range(stored, stored + 100)]
        for item, memory_id in zip(items, api.store_many(items)):
            print(json.dumps({"memory_id": memory_id, "closes_after": closes, "contents": item["data"]}), flush=True)
        stored += 100
    elif step == "close":  # a clean close snapshots the embedded Redis
        api.close()
        closes += 1
        api = open_engine()
    elif step == "maintain":
        print(json.dumps({"maintained": api.force_memory_maintenance().im_to_ltm}), flush=True)
    elif step == "promote":  # read every LTM memory often enough to be promoted by the next maintenance
        for memory in api.retrieve_by_time_range("solo", 0, 2**53 - 1):
            if memory["tier"] == "ltm":
                for _ in range(api.config.ltm_config.promote_threshold):
                    api.get_memory("solo", memory["memory_id"])
print("ready", flush=True)
time.sleep(120)
"""

SCENARIOS = {
    "never-closed": "store,maintain",
    "closed": "store,close,store,maintain",
    "promoted": "store,maintain,promote,maintain,store,maintain",  # a promotion snapshots before LTM lets go
}

def open_engine(data_dir: str) -> AgentMemoryAPI:
    return AgentMemoryAPI(MemoryConfig(
        redis_url="", data_dir=data_dir, key_prefix=PREFIX, cleanup_interval=1_000_000,
        stm_config={"memory_limit": 20}, im_config={"memory_limit": 40},
        ltm_config={"dictionary_samples": 30}, search_config={"text_embedding": "off", "state_vectors": True}))


def reported(lines: list[str]) -> tuple[dict[str, dict[str, Any]], int]:
    """The memories the child said it stored (id -> its line) and how many it moved to LTM."""
    stored, moved = {}, 0
    for line in lines:
        if line.startswith("{"):
            item = json.loads(line)
            if "maintained" in item:
                moved = item["maintained"]
            else:
                stored[item["memory_id"]] = item
    return stored, moved


@pytest.mark.parametrize("scenario", ["never-closed", "closed", "promoted"])
def test_what_survives_a_sigkilled_embedded_engine_is_one_consistent_truth(embedded_child, tmp_path, scenario):
    data_dir = str(tmp_path / "data")
    child = embedded_child(CHILD, data_dir, SCENARIOS[scenario])
    stored, moved = reported(child.wait_for("ready", timeout=90))
    child.kill()
    assert moved > 0, "the child's maintenance moved nothing to LTM; the test proved nothing"

    with open_engine(data_dir) as api:
        answers = every_query_kind(api, AGENT, ATTRIBUTES, stored[next(iter(stored))]["contents"])
        found = {}
        for memory_id in stored:
            got = api.get_memory(AGENT, memory_id)
            if got is not None:
                found[memory_id] = got
        total = api.get_memory_statistics(AGENT)["total_memories"]

    problems = []
    for memory_id, got in found.items():
        if got["contents"] != stored[memory_id]["contents"]:
            problems.append(f"get_memory read {memory_id} with other contents")
    for kind, ids in answers.items():
        if len(ids) != len(set(ids)):
            problems.append(f"{kind} named a memory twice")
        if set(ids) != set(found):
            only_query, only_get = len(set(ids) - set(found)), len(set(found) - set(ids))
            problems.append(f"{kind} found {len(set(ids))} memories, get_memory {len(found)} "
                            f"({only_query} only by the query, {only_get} only by get_memory)")
    if total != len(found):
        problems.append(f"statistics counted {total} memories for {len(found)} distinct")
    closes = SCENARIOS[scenario].count("close")
    closed_over = {memory_id for memory_id, item in stored.items() if item["closes_after"] < closes}
    lost = closed_over - set(found)
    if lost:
        problems.append(f"{len(lost)} of the {len(closed_over)} memories stored before a clean close are gone")
    assert not problems, (f"of {len(stored)} memories the killed child stored ({moved} moved to LTM), "
                          f"get_memory finds {len(found)}:\n" + "\n".join(problems))
