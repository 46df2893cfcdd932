"""The coordination layer's keys: every script declares the keys it touches, data of the earlier
key layout is carried over, collaboration states past the kept ones leave with their keys, and
readers acting as one agent split broadcasts (whose cursors live in the reader's slot)."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from memory import AccessTier, AgentCredentials, AgentWorkspace, ConflictContext, RedisShortTermMemory, StagedPattern
from memory.team import values
from memory.team.collaboration import KEEP
from team_support import redis_memory
from tiers.coordination.durable import FILE

LUA = Path(__file__).resolve().parent.parent / "tiers" / "lua" / "team"
FINDER = AgentCredentials("finder", AccessTier.CONTRIBUTOR)
VALIDATOR = AgentCredentials("architect", AccessTier.VALIDATOR)
CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*(?:,\s*([^,)]*))?")


@pytest.mark.parametrize("path", sorted(LUA.glob("*.lua")), ids=lambda path: path.name)
def test_every_team_script_names_its_keys_and_arguments_and_builds_no_key(path):
    source = path.read_text()
    header = source.split("\n\n", 1)[0]
    assert ("-- KEYS:" in header and "-- ARGV:" in header) or "No KEYS or ARGV of its own" in header, path.name
    for command, first in CALL.findall(source):
        assert ".." not in first, f"{path.name}: {command} on a key built in Lua ({first.strip()})"


# -- the earlier key layout ----------------------------------------------------------------------------


def _pattern(pattern_id: str) -> bytes:
    fields = StagedPattern(pattern_id, "finder", "optimization", "Eager loading", "avoid N+1").to_dict()
    return values.pack({**fields, "staged_at": 1_800_000_000.0}, "pattern")


def _conflict(conflict_id: str) -> bytes:
    conflict = ConflictContext(conflict_id, {"ann": {"position": "ship", "confidence": 0.9},
                                             "ben": {"position": "wait", "confidence": 0.2}})
    return values.pack({**conflict.to_dict(), "recorded_by": "finder"}, "conflict")


def test_a_redis_servers_earlier_staged_patterns_and_conflicts_are_carried_over(redis_prefix, tmp_path):
    made: list[RedisShortTermMemory] = []

    def make_memory() -> RedisShortTermMemory:
        made.append(redis_memory(redis_prefix, str(tmp_path)))
        return made[-1]

    try:
        _carry_over_on_redis(make_memory)
    finally:
        for memory in made:
            memory.close()


def _carry_over_on_redis(make_memory) -> None:
    first = make_memory()
    client, earlier = first.client, first.keys.earlier
    for n in range(5):
        client.set(earlier.staged(f"old-{n}"), _pattern(f"old-{n}"), px=3_600_000)
        client.zadd(earlier.staged_index(), {f"old-{n}": 1_800_000_000_000 + n})
    client.set(earlier.decision("old-0"), "a validator of the earlier layout", px=60_000)
    client.set(earlier.conflict("c-old"), _conflict("c-old"), px=86_400_000)

    memories = [make_memory() for _ in range(4)]
    listings: list[list[str]] = []
    threads = [threading.Thread(target=lambda m=m: listings.append(  # four processes' first calls at once
        [p.pattern_id for p in m.get_staged_patterns(VALIDATOR)])) for m in memories]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert listings == [[f"old-{n}" for n in range(5)]] * 4  # none missed while another moved them
    assert not client.exists(earlier.staged_index(), earlier.staged("old-1"), earlier.decision("old-0"))
    assert 0 < client.pttl(first.keys.staged("old-1")) <= 3_600_000  # its TTL went with it
    assert memories[0].promote_pattern("old-0", credentials=VALIDATOR).pattern_id == "old-0"

    conflict = memories[1].get_conflict("c-old", credentials=VALIDATOR)  # read where it was recorded
    assert conflict.positions["ann"]["position"] == "ship"
    resolved = memories[2].resolve_conflict("c-old", credentials=VALIDATOR)
    assert resolved.resolution["winner"] == "ann"
    assert memories[3].get_conflict("c-old", credentials=VALIDATOR).resolved
    assert 0 < client.pttl(earlier.conflict("c-old")) <= 86_400_000  # resolved in place, its TTL kept
    first.record_conflict(ConflictContext("c-old", {"x": {"position": 1}, "y": {"position": 2}}), credentials=FINDER)
    assert set(first.get_conflict("c-old", credentials=VALIDATOR).positions) == {"x", "y"}  # the new record wins


def test_an_embedded_durable_copy_of_the_earlier_layout_is_carried_over(tmp_path):
    memory = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path))
    client, earlier, mirror = memory.client, memory.keys.earlier, memory.stores.context.mirror
    client.set(earlier.staged("old-1"), _pattern("old-1"), px=3_600_000)
    client.zadd(earlier.staged_index(), {"old-1": 1_800_000_000_000})
    client.set(earlier.patterns + "promoted:done-1", "1")
    client.set(earlier.conflict("c-old"), _conflict("c-old"), px=86_400_000)
    mirror.copy([(earlier.staged("old-1"), "string"), (earlier.staged_index(), "zmember:old-1"),
                 (earlier.patterns + "promoted:done-1", "string"), (earlier.conflict("c-old"), "string")])
    memory.close()

    reopened = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path))
    try:
        assert [p.pattern_id for p in reopened.get_staged_patterns(VALIDATOR)] == ["old-1"]
        assert reopened.stage_pattern(StagedPattern("done-1", "finder", "t", "n", "d"), credentials=FINDER) is False
        assert reopened.get_conflict("c-old", credentials=VALIDATOR).positions["ben"]["position"] == "wait"
        assert reopened.resolve_conflict("c-old", credentials=VALIDATOR).resolution["winner"] == "ann"
    finally:
        reopened.close()
    with sqlite3.connect(tmp_path / FILE) as db:
        keys = [key for (key,) in db.execute("SELECT key FROM team_keys")]
    assert keys and not [key for key in keys if "{patterns}" in key or "{conflicts}" in key]
    again = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path))
    try:
        assert again.get_conflict("c-old", credentials=VALIDATOR).resolved  # the resolution was kept durably
        assert [p.pattern_id for p in again.get_staged_patterns(VALIDATOR)] == ["old-1"]
    finally:
        again.close()


# -- collaboration states past the kept ones ------------------------------------------------------------


def test_states_past_the_kept_ones_leave_with_their_keys(make_memory, redis_engine, tmp_path):
    memory = make_memory()
    for n in range(KEEP + 5):
        memory.persist_collaboration_state(FINDER, f"s-{n}", {"n": n})
    assert memory.client.zcard(memory.keys.collab_index("finder")) == KEEP
    assert [memory.client.exists(memory.keys.collab_state("finder", f"s-{n}")) for n in range(6)] == [0] * 5 + [1]
    assert memory.restore_collaboration_state(FINDER) == (f"s-{KEEP + 4}", {"n": KEEP + 4})
    memory.persist_collaboration_state(FINDER, "s-5", {"n": "again"})  # the oldest kept, persisted again: the newest
    assert memory.restore_collaboration_state(FINDER) == ("s-5", {"n": "again"})
    memory.persist_collaboration_state(FINDER, "s-new", {"n": "new"})  # pushes out the oldest now, s-6
    assert memory.client.zcard(memory.keys.collab_index("finder")) == KEEP
    if redis_engine == "embedded":
        memory.close()
        memory = make_memory()
    assert memory.restore_collaboration_state(FINDER, "s-4") is None
    assert memory.restore_collaboration_state(FINDER, "s-6") is None
    assert memory.restore_collaboration_state(FINDER, "s-5") == ("s-5", {"n": "again"})
    assert memory.restore_collaboration_state(FINDER, "s-7") == ("s-7", {"n": 7})


# -- broadcasts read by several readers acting as one agent ----------------------------------------------


def test_readers_acting_as_one_agent_split_the_broadcasts(memory):
    count = 300
    got: list[list[int]] = [[], [], []]
    sent = threading.Event()

    def read(into: list[int]) -> None:
        me = AgentWorkspace("lead", short_term_memory=memory)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (sent.is_set() and sum(map(len, got)) >= count):
            into += [s["data"] for s in me.receive_signals(timeout=0.1)]

    readers = [threading.Thread(target=read, args=(into,)) for into in got]
    for reader in readers:
        reader.start()
    boss = AgentWorkspace("boss", short_term_memory=memory)
    for n in range(count):
        boss.send_signal(("plan", "note")[n % 2], n)
    sent.set()
    for reader in readers:
        reader.join(60)
    everything = [n for share in got for n in share]
    assert sorted(everything) == list(range(count))  # each once
    for share in got:
        assert share == sorted(share)  # in sending order

