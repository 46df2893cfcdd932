"""Signals: each reaches each recipient once, in order, without overwrite; waiting; expiry; no KEYS."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from memory import AccessTier, AgentWorkspace, RedisShortTermMemory, TTLStrategy
from support import FakeClock
from team_support import redis_memory, run_processes
from tiers.coordination.local_signals import SWEEP_EVERY_S
from tiers.errors import InvalidInputError


def agent(memory, name, tier=AccessTier.CONTRIBUTOR):
    return AgentWorkspace(name, short_term_memory=memory, access_tier=tier)


def test_same_type_signals_from_one_sender_do_not_overwrite_each_other(memory):
    sender, lead = agent(memory, "sender"), agent(memory, "lead")
    for i in range(5):
        sender.send_signal("progress", {"step": i}, target_agent="lead")

    received = lead.receive_signals("progress")

    assert [s["data"] for s in received] == [{"step": i} for i in range(5)]
    assert {(s["sender"], s["signal_type"], s["target"]) for s in received} == {("sender", "progress", "lead")}
    assert lead.receive_signals("progress") == []  # once


def test_targeted_signals_reach_only_their_target_and_broadcasts_reach_everyone(memory):
    a, b, c = agent(memory, "a"), agent(memory, "b"), agent(memory, "c")
    a.send_signal("note", {"to": "b"}, target_agent="b")
    a.send_signal("note", {"to": "all"})

    assert [s["data"] for s in b.receive_signals("note")] == [{"to": "b"}, {"to": "all"}]
    assert [s["data"] for s in c.receive_signals("note")] == [{"to": "all"}]
    assert [s["data"] for s in a.receive_signals("note")] == [{"to": "all"}]  # the sender hears its broadcast
    assert [b.receive_signals(), c.receive_signals()] == [[], []]


def test_reading_one_type_leaves_the_others_for_later(memory):
    sender, lead = agent(memory, "s"), agent(memory, "lead")
    sender.send_signal("alpha", 1, target_agent="lead")
    sender.send_signal("beta", 2, target_agent="lead")
    sender.send_signal("alpha", 3, target_agent="lead")
    sender.send_signal("gamma", 4)

    assert [s["data"] for s in lead.receive_signals("alpha")] == [1, 3]
    assert [(s["signal_type"], s["data"]) for s in lead.receive_signals()] == [("beta", 2), ("gamma", 4)]
    assert lead.receive_signals() == [] and lead.receive_signals("alpha") == []


def test_all_types_come_in_sending_order(memory):
    sender, lead = agent(memory, "s"), agent(memory, "lead")
    sent = [("t1", 0), ("t2", 1), ("t1", 2), ("t3", 3), ("t2", 4)]
    for kind, n in sent:
        sender.send_signal(kind, n, target_agent="lead" if n % 2 else None)
    assert [(s["signal_type"], s["data"]) for s in lead.receive_signals()] == sent


def test_a_reader_waits_for_the_next_signal(memory):
    lead = agent(memory, "lead")
    sender = agent(memory, "sender")

    def send_later():
        time.sleep(0.2)
        sender.send_signal("done", {"ok": True}, target_agent="lead")

    thread = threading.Thread(target=send_later)
    started = time.monotonic()
    thread.start()
    received = lead.receive_signals("done", timeout=5)
    waited = time.monotonic() - started
    thread.join()

    assert [s["data"] for s in received] == [{"ok": True}]
    assert 0.15 < waited < 3


@pytest.mark.parametrize("known", [False, True], ids=["new-type", "known-type"])
@pytest.mark.parametrize("broadcast", [False, True], ids=["targeted", "broadcast"])
def test_a_reader_of_every_type_waits_for_the_next_signal(memory, known, broadcast):
    lead, sender = agent(memory, "lead"), agent(memory, "sender")
    if known:  # the type has a stream the reader already read: its wait is on that stream
        sender.send_signal("news", 0, target_agent=None if broadcast else "lead")
        assert [s["data"] for s in lead.receive_signals()] == [0]

    def send_later():
        time.sleep(0.2)
        sender.send_signal("news", 1, target_agent=None if broadcast else "lead")

    thread = threading.Thread(target=send_later)
    started = time.monotonic()
    thread.start()
    received = lead.receive_signals(timeout=5)
    waited = time.monotonic() - started
    thread.join()

    assert [s["data"] for s in received] == [1]
    assert 0.15 < waited < 3


def test_a_wait_ends_at_its_timeout(memory):
    started = time.monotonic()
    assert agent(memory, "lonely").receive_signals("never", timeout=0.3) == []
    assert 0.25 < time.monotonic() - started < 2


def test_signals_older_than_the_coordination_ttl_are_not_delivered(redis_prefix, tmp_path):
    """On Redis, ages are on the Redis clock: an entry written an age ago stands for an old signal."""
    memory = redis_memory(redis_prefix, str(tmp_path))
    lead = agent(memory, "lead")
    stream = memory.keys.inbox("lead", "old")
    memory.client.xadd(stream, {"type": "old", "sender": "x", "data": b"\xc0", "sent_at": "1"}, id="1-1")
    memory.client.sadd(memory.keys.inbox_types("lead"), "old")
    agent(memory, "s").send_signal("old", {"fresh": True}, target_agent="lead")

    assert [s["data"] for s in lead.receive_signals("old")] == [{"fresh": True}]
    assert memory.client.xlen(stream) == 1  # trimmed by MINID on the send
    assert 0 < memory.client.pttl(stream) <= 300_000
    memory.close()


def test_embedded_signals_older_than_the_coordination_ttl_are_neither_delivered_nor_kept(tmp_path):
    """On the embedded engine, ages are on the memory's clock."""
    clock = FakeClock()
    memory = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path), clock=clock)
    sender, lead, late = agent(memory, "sender"), agent(memory, "lead"), agent(memory, "late")
    sender.send_signal("old", "stale", target_agent="lead")
    sender.send_signal("old", "stale broadcast")
    clock.advance(TTLStrategy.COORDINATION - 1)
    sender.send_signal("old", "fresh", target_agent="lead")
    clock.advance(2)  # the first two are now past the TTL, the third is not

    assert [s["data"] for s in lead.receive_signals()] == ["fresh"]
    assert late.receive_signals() == []
    clock.advance(TTLStrategy.COORDINATION + SWEEP_EVERY_S)
    sender.send_signal("new", 1, target_agent="someone")  # a send sweeps what nobody read
    board = memory.stores.signals._board
    assert list(board.inboxes) == ["someone"] and board.broadcasts == {}
    memory.close()


def test_observers_read_but_do_not_send(memory):
    dash = agent(memory, "dash", AccessTier.OBSERVER)
    agent(memory, "s").send_signal("status", {"ok": 1})
    assert [s["data"] for s in dash.receive_signals("status")] == [{"ok": 1}]
    with pytest.raises(PermissionError, match="CONTRIBUTOR"):
        dash.send_signal("status", {})


@pytest.mark.parametrize("kind", ["", "has:colon", "x" * 65, None, 3])
def test_bad_signal_types_are_refused(memory, kind):
    with pytest.raises((InvalidInputError, TypeError)):
        agent(memory, "s").send_signal(kind, {})


def test_the_memory_level_call_of_the_guide(memory):
    from memory import AgentCoordinator

    coordinator = AgentCoordinator(memory, team_id="review_team")
    coordinator.broadcast("ping", {"timestamp": 1.0})
    signals = memory.receive_signals(coordinator._credentials, signal_type="ping")
    assert [(s["sender"], s["data"]) for s in signals] == [("coordinator:review_team", {"timestamp": 1.0})]


def test_no_script_or_call_uses_keys():
    root = Path(__file__).parent.parent
    files = [*(root / "memory" / "team").glob("*.py"), *(root / "tiers" / "coordination").glob("*.py"),
             *(root / "tiers" / "lua" / "team").glob("*.lua")]
    assert len(files) > 30
    source = "\n".join(path.read_text() for path in files)
    assert not re.search(r"""redis\.call\(\s*['"]KEYS['"]""", source, re.I)
    assert not re.search(r"\.keys\(\s*['\"]", source)  # redis-py's KEYS



# -- many processes ---------------------------------------------------------------------------
def _send_many(prefix, data_dir, sender, count, queue):
    memory = redis_memory(prefix, data_dir)
    me = AgentWorkspace(sender, short_term_memory=memory)
    for n in range(count):
        me.send_signal("work", {"sender": sender, "n": n}, target_agent="lead")
        if n % 50 == 0:
            me.send_signal("tick", {"sender": sender, "n": n})
    memory.close()
    queue.put(count)


def _receive_all(prefix, data_dir, reader, expected, queue):
    memory = redis_memory(prefix, data_dir)
    me = AgentWorkspace(reader, short_term_memory=memory)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        got += [(s["signal_type"], s["data"]["sender"], s["data"]["n"]) for s in me.receive_signals(timeout=1)]
    memory.close()
    queue.put(got)


@pytest.mark.slow
def test_signals_from_many_processes_arrive_once_in_order(redis_prefix, tmp_path):
    senders, count = 4, 300
    ticks = senders * len(range(0, count, 50))
    args = [(redis_prefix, str(tmp_path), f"s{i}", count) for i in range(senders)]
    readers = [(redis_prefix, str(tmp_path), "lead", senders * count + ticks), (redis_prefix, str(tmp_path), "lead", 0)]

    from team_support import FORK

    queue = FORK.Queue()
    procs = [FORK.Process(target=_send_many, args=(*a, queue)) for a in args]
    procs += [FORK.Process(target=_receive_all, args=(*a, queue)) for a in readers[:1]]
    for p in procs:
        p.start()
    outputs = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    (got,) = [o for o in outputs if isinstance(o, list)]

    work = [(sender, n) for kind, sender, n in got if kind == "work"]
    assert len(work) == senders * count and len(set(work)) == len(work)  # none lost, none twice
    for i in range(senders):
        assert [n for sender, n in work if sender == f"s{i}"] == list(range(count))  # in order
    assert sorted((s, n) for kind, s, n in got if kind == "tick") == sorted(
        (f"s{i}", n) for i in range(senders) for n in range(0, count, 50)
    )


def _read_as_lead(prefix, data_dir, queue):
    memory = redis_memory(prefix, data_dir)
    me = AgentWorkspace("lead", short_term_memory=memory)
    got = []
    for _ in range(200):
        got += [s["data"] for s in me.receive_signals("job")]
    memory.close()
    queue.put(got)


@pytest.mark.slow
def test_two_processes_reading_as_one_agent_never_get_the_same_signal(redis_prefix, tmp_path):
    memory = redis_memory(redis_prefix, str(tmp_path))
    sender = AgentWorkspace("boss", short_term_memory=memory)
    for n in range(1000):
        sender.send_signal("job", n, target_agent="lead")
    halves = run_processes(_read_as_lead, [(redis_prefix, str(tmp_path))] * 3)
    got = [n for half in halves for n in half]
    assert sorted(got) == list(range(1000))
    for half in halves:
        assert half == sorted(half)
    memory.close()


# -- many threads (both engines; on the embedded engine, threads are how a team shares it) -------
def test_signals_from_many_threads_arrive_once_in_order_and_readers_as_one_agent_split_them(memory):
    senders, count = 4, 250
    received: list[list[tuple[str, int]]] = [[], []]

    def send(name):
        me = agent(memory, name)
        for n in range(count):
            me.send_signal("work", {"sender": name, "n": n}, target_agent="lead")

    def read(into):
        me = agent(memory, "lead")
        deadline = time.monotonic() + 30
        while sum(map(len, received)) < senders * count and time.monotonic() < deadline:
            into += [(s["data"]["sender"], s["data"]["n"]) for s in me.receive_signals("work", timeout=0.2)]

    threads = [threading.Thread(target=send, args=(f"s{i}",)) for i in range(senders)]
    threads += [threading.Thread(target=read, args=(into,)) for into in received]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    got = received[0] + received[1]
    assert len(got) == senders * count and len(set(got)) == len(got)  # none lost, none twice
    for half in received:  # each reader's share comes in sending order
        for i in range(senders):
            mine = [n for sender, n in half if sender == f"s{i}"]
            assert mine == sorted(mine)


def test_memories_on_one_engine_and_prefix_share_signals_and_other_prefixes_do_not(make_memory, team_prefix):
    first, second, elsewhere = make_memory(), make_memory(), make_memory(key_prefix=f"{team_prefix}x")
    agent(first, "s").send_signal("hello", 1, target_agent="lead")
    agent(first, "s").send_signal("hello", 2)

    assert agent(elsewhere, "lead").receive_signals() == []
    assert [s["data"] for s in agent(second, "lead").receive_signals("hello")] == [1, 2]
    assert agent(first, "lead").receive_signals() == []


def test_embedded_signals_are_real_time_and_not_kept_across_a_restart(tmp_path):
    memory = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path))
    agent(memory, "s").send_signal("hello", 1, target_agent="lead")
    memory.close()
    reopened = RedisShortTermMemory(use_mock=True, data_dir=str(tmp_path))
    assert not reopened.get_capabilities()["signals_kept_across_restart"]
    assert agent(reopened, "lead").receive_signals() == []
    agent(reopened, "s").send_signal("hello", 2, target_agent="lead")
    assert [s["data"] for s in agent(reopened, "lead").receive_signals()] == [2]
    reopened.close()
