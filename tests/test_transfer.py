"""Export and import: a round trip leaves every query answering the same, twice stores once, and
bad input is refused by name with nothing of its batch stored."""

from __future__ import annotations

import base64
import json
import math
import threading

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bad_values import SETTINGS
from memory import ImportReport, InvalidInputError
from memory._engine import transfer

LIMITS = {"cleanup_interval": 10, "stm_config": {"memory_limit": 15}, "im_config": {"memory_limit": 25}}


def seed(api, agents=("a", "b"), steps=60):
    """Memories of every type, with places, bytes and int keys among the contents, spread over
    the tiers by maintenance, some of them read."""
    for agent in agents:
        for step in range(steps):
            data = {"step": step, "position": [step % 7, step // 7], "inventory": {"wood": step % 4}}
            if step % 9 == 0:
                data = {"step": step, "blob": b"\x00\xff", 7: "an int key", "nan": math.nan}
            kind = ("state", "action", "interaction")[step % 3]
            api.store_many([{"agent_id": agent, "step_number": step, "data": data, "memory_type": kind,
                             "priority": (step % 10) / 10}])
        for memory in api.retrieve_by_time_range(agent, 0, 5):
            api.get_memory(agent, memory["memory_id"])  # read counts and last reads travel too
    api.force_memory_maintenance()


def answers(api, agent):
    """What the queries of a simulation ask, in a comparable form."""
    same = lambda rows: repr(list(rows))  # noqa: E731  (a NaN is not equal to itself; its repr is)
    return {
        "range": same(api.retrieve_by_time_range(agent, 0, 10**6)),
        "attributes": same(api.retrieve_by_attributes(agent, {"inventory.wood": 2})),
        "important": same(api.retrieve_most_important(agent, 7)),
        "near": same(api.retrieve_by_location(agent, [3, 3], 2.5)),
        "similar": same(api.retrieve_similar_states(agent, {"inventory": {"wood": 1}, "position": [2, 2]}, k=5)),
        "types": same(api.query(agent).of_type("action").all()),
    }


def tier_counts(api, agent):
    return {tier: held["count"] for tier, held in api.get_memory_statistics(agent)["tiers"].items()}


def copy_engine(make_api, prefix, tmp_path, **options):
    return make_api(key_prefix=f"{prefix}-copy", data_dir=str(tmp_path / "copy"), **{**LIMITS, **options})


def test_a_round_trip_keeping_tiers_answers_every_query_the_same(make_api, prefix, tmp_path):
    source = make_api(**LIMITS, search_config={"state_vectors": True})
    seed(source)
    exported = [json.loads(json.dumps(m)) for m in source.export_memories(vectors=True, tiers=True)]
    assert len(exported) == 120 and {m["tier"] for m in exported} == {"stm", "im", "ltm"}
    assert any("contents_msgpack" in m for m in exported) and any("contents" in m for m in exported)
    target = copy_engine(make_api, prefix, tmp_path)  # without state vectors of its own: they travel
    report = target.import_memories(exported, tiers=True)
    assert report == ImportReport(read=120, imported=120, skipped=0, agents=2)
    for agent in ("a", "b"):
        assert answers(target, agent) == answers(source, agent)
        assert tier_counts(target, agent) == tier_counts(source, agent)
    again = [json.loads(json.dumps(m)) for m in target.export_memories(vectors=True, tiers=True)]
    assert again == exported  # every field of every memory, its vectors and its tier


def without_tiers(rows):
    """The memories without what depends on the tier holding them."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("tier", "embeddings")}
        row["metadata"] = {k: v for k, v in row["metadata"].items() if k not in ("tier", "compression_level")}
        out.append(repr(row))
    return out


def test_a_round_trip_into_stm_keeps_every_memory_and_maintenance_spreads_them(make_api, prefix, tmp_path):
    source = make_api(**LIMITS)
    seed(source)
    exported = list(source.export_memories(["a"]))
    assert "tier" not in exported[0] and "vectors" not in exported[0]
    target = copy_engine(make_api, prefix, tmp_path, cleanup_interval=10**6)
    assert target.import_memories(exported).imported == 60
    everything = lambda api: api.retrieve_by_time_range("a", 0, 10**6)  # noqa: E731
    assert {r["tier"] for r in everything(target)} == {"stm"}
    assert without_tiers(everything(target)) == without_tiers(everything(source))
    target.force_memory_maintenance("a")
    assert tier_counts(target, "a") == {"stm": 15, "im": 23, "ltm": 22}  # IM down to its low watermark, 0.95 of 25
    assert without_tiers(everything(target)) == without_tiers(everything(source))


def test_importing_twice_or_after_the_memories_moved_stores_each_once(make_api, prefix, tmp_path):
    source = make_api(**LIMITS)
    seed(source, agents=("a",))
    exported = list(source.export_memories())
    target = copy_engine(make_api, prefix, tmp_path, cleanup_interval=10**6)
    assert target.import_memories(exported[:40]).imported == 40
    target.force_memory_maintenance()  # what was imported moves to IM and LTM
    again = target.import_memories(exported)
    assert (again.imported, again.skipped) == (20, 40)
    assert target.import_memories(exported) == ImportReport(read=60, imported=0, skipped=60, agents=1)
    assert source.import_memories(exported).skipped == 60  # into the deployment it came from: nothing
    target.force_memory_maintenance()
    assert without_tiers(target.retrieve_by_time_range("a", 0, 100)) == \
        without_tiers(source.retrieve_by_time_range("a", 0, 100))


def test_an_export_pages_past_steps_holding_more_than_a_page(make_api, monkeypatch):
    api = make_api(cleanup_interval=10**6)
    api.store_many([{"agent_id": "a", "step_number": step // 5, "data": {"i": step}} for step in range(40)])
    monkeypatch.setattr(transfer, "PAGE", 3)
    exported = [m["contents"]["i"] for m in api.export_memories(["a"])]
    assert sorted(exported) == list(range(40)) and len(exported) == 40
    assert [i // 5 for i in exported] == sorted(i // 5 for i in exported)


def test_an_export_sees_each_memory_once_while_maintenance_moves_them(make_api):
    api = make_api(cleanup_interval=10**6, stm_config={"memory_limit": 5}, im_config={"memory_limit": 10})
    api.store_many([{"agent_id": "a", "step_number": step, "data": {"i": step}} for step in range(300)])
    stop = threading.Event()

    def maintain():
        step = 300
        while not stop.is_set():
            api.store_many([{"agent_id": "a", "step_number": step, "data": {"i": step}}])
            api.force_memory_maintenance("a")
            step += 1

    mover = threading.Thread(target=maintain)
    mover.start()
    try:
        for _ in range(3):
            seen = [m["contents"]["i"] for m in api.export_memories(["a"])]
            assert len(seen) == len(set(seen)) and set(range(300)) <= set(seen)
    finally:
        stop.set()
        mover.join()


def good(api):
    return list(api.export_memories(["a"], vectors=True, tiers=True))[0]


def packed(value):
    return base64.b64encode(msgpack.packb(value, use_bin_type=True)).decode()


BAD = {
    "not an object": lambda m: ["a list"],
    "an unknown field": lambda m: {**m, "colour": "red"},
    "an id of another agent": lambda m: {**m, "memory_id": m["memory_id"].replace("a-", "b-", 1)},
    "an id of another step": lambda m: {**m, "step_number": m["step_number"] + 1},
    "a made-up id": lambda m: {**m, "memory_id": f"a-{'z' * 22}-{m['step_number']}"},
    "an importance above 1": lambda m: {**m, "importance_score": 1.5},
    "a negative step": lambda m: {**m, "step_number": -1},
    "a time that is not a number": lambda m: {**m, "timestamp": "yesterday"},
    "an infinite time": lambda m: {**m, "last_access_time": math.inf},
    "a negative read count": lambda m: {**m, "retrieval_count": -2},
    "both forms of contents": lambda m: {**m, "contents_msgpack": packed({"x": 1})},
    "no contents": lambda m: {k: v for k, v in m.items() if k != "contents"},
    "contents that are not a dict": lambda m: {**m, "contents": [1, 2]},
    "msgpack that is not base64": lambda m: {**{k: v for k, v in m.items() if k != "contents"},
                                              "contents_msgpack": "%%%"},
    "msgpack contents that are not a dict": lambda m: {**{k: v for k, v in m.items() if k != "contents"},
                                                        "contents_msgpack": packed([1])},
    "an unknown tier": lambda m: {**m, "tier": "disk"},
    "vectors that are not packed vectors": lambda m: {**m, "vectors": packed([b"xx", None, None, None, None])},
    "vectors of five strings": lambda m: {**m, "vectors": packed(["a", "b", "c", "d", "e"])},
    "a text vector of an unknown resolution": lambda m: {**m, "vectors": packed([None, None, None, "tiny", b"x"])},
    "an unknown memory type": lambda m: {**m, "memory_type": "dream"},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_memory_that_does_not_read_as_one_is_refused_by_its_place_and_its_batch_is_not_stored(
        make_api, prefix, tmp_path, case, monkeypatch):
    source = make_api(cleanup_interval=10**6)
    source.store_many([{"agent_id": "a", "step_number": step, "data": {"i": step}} for step in range(7)])
    exported = list(source.export_memories(["a"], vectors=True, tiers=True))
    target = copy_engine(make_api, prefix, tmp_path)
    monkeypatch.setattr(transfer, "PAGE", 4)
    items = [transfer.header(), *exported[:5], BAD[case](exported[5]), exported[6]]
    with pytest.raises(InvalidInputError, match="item 7 of the import"):
        target.import_memories(items)
    held = [m["contents"]["i"] for m in target.retrieve_by_time_range("a", 0, 100)]
    assert held == [0, 1, 2, 3]  # the first batch; nothing of the batch holding the bad one


def test_an_export_of_another_format_version_is_refused(api):
    with pytest.raises(InvalidInputError, match="version 2 of the format"):
        api.import_memories([{"format": transfer.FORMAT, "version": 2}])


@pytest.mark.parametrize("flag", [1, "yes", None])
def test_export_and_import_flags_are_booleans(api, flag):
    with pytest.raises(InvalidInputError, match="must be True or False"):
        api.export_memories(vectors=flag)
    with pytest.raises(InvalidInputError, match="must be True or False"):
        api.import_memories([], tiers=flag)


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=4)  # no lone surrogate: a store refuses one
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True), TEXT,
                   st.binary(max_size=5))
CONTENTS = st.dictionaries(st.one_of(TEXT, st.integers(-5, 5)), st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6), max_size=4)


@settings(SETTINGS, max_examples=25)
@given(contents=st.lists(CONTENTS, min_size=1, max_size=4))
def test_any_contents_a_store_takes_come_back_from_a_file_byte_for_byte(make_api, prefix, tmp_path, contents):
    source = make_api()
    source.clear_agent_memory("a")
    source.store_many([{"agent_id": "a", "step_number": step, "data": data} for step, data in enumerate(contents)])
    stored = {m["memory_id"]: m["contents"] for m in source.retrieve_by_time_range("a", 0, 10)}
    lines = [json.dumps(m) for m in source.export_memories(["a"])]
    target = copy_engine(make_api, prefix, tmp_path)
    target.clear_agent_memory("a")
    assert target.import_memories(json.loads(line) for line in lines).imported == len(contents)
    back = {m["memory_id"]: m["contents"] for m in target.retrieve_by_time_range("a", 0, 10)}
    assert repr(back) == repr(stored)  # repr: NaN is not equal to itself


def test_two_imports_of_one_file_at_once_store_each_memory_once(make_api, prefix, tmp_path):
    source = make_api(cleanup_interval=10**6)
    source.store_many([{"agent_id": f"agent-{i % 4}", "step_number": i, "data": {"i": i}} for i in range(400)])
    exported = list(source.export_memories())
    target = copy_engine(make_api, prefix, tmp_path, cleanup_interval=10**6)
    reports: list[ImportReport] = []
    threads = [threading.Thread(target=lambda: reports.append(target.import_memories(exported))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reports) == 2 and all(r.read == 400 for r in reports)
    held = [m["contents"]["i"] for agent in range(4) for m in target.retrieve_by_time_range(f"agent-{agent}", 0, 400)]
    assert sorted(held) == list(range(400))  # each once, whichever import stored it
