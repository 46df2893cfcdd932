"""Signals on the embedded engine: the contract of base.SignalStore, kept in this process's memory.

The embedded engine belongs to one process (its data directory is locked), so its signals need not
go through Redis commands: on fakeredis a Streams round trip (send, then receive) interprets about
eleven commands and cost ~0.35 ms, where lists under a lock cost a few microseconds. The contract
is the one the Redis Streams bus keeps (the same tests run on both): each signal reaches each
recipient once, in sending order, and none overwrites another; a broadcast reaches every agent that
reads, the sender too; a reader can wait for the next one with a timeout; signals older than the
coordination TTL are neither delivered nor kept. As in the file-first guide, signals are real-time
on the embedded engine: they are not kept across a restart.

Memories on one embedded server with one key prefix share a board, as they would share keys on
Redis. Ages are measured on the memory's clock (``clock``), which stamps ``sent_at`` too.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, NamedTuple

from tiers.coordination.base import Received
from tiers.coordination.signals import MAX_PER_STREAM

SWEEP_EVERY_S = 30.0  # how often a send drops every expired signal, read or not (bounds the memory)


class _Signal(NamedTuple):
    seq: int  # sending order, across streams
    at_ms: int  # when it was sent, on the sender's clock, for expiry
    entry_id: str
    kind: str
    sender: str
    blob: bytes
    sent_at: float


class _Stream:
    """Signals of one type to one recipient (or to everyone), in sending order, and where each
    reader stands in them."""

    __slots__ = ("entries", "cursors")

    def __init__(self) -> None:
        self.entries: list[_Signal] = []
        self.cursors: dict[str, int] = {}  # reader -> seq of the last signal it was given

    def drop_older_than(self, oldest_ms: int) -> None:
        entries = self.entries
        if entries and entries[0].at_ms < oldest_ms:
            keep = 0
            while keep < len(entries) and entries[keep].at_ms < oldest_ms:
                keep += 1
            del entries[:keep]

    def take(self, reader: str) -> list[_Signal]:
        """The reader's next signals (at most MAX_PER_STREAM), moving its cursor past them."""
        entries = self.entries
        start = bisect_right(entries, self.cursors.get(reader, 0), key=lambda signal: signal.seq)
        taken = entries[start : start + MAX_PER_STREAM]
        if taken:
            self.cursors[reader] = taken[-1].seq
        return taken


class _Board:
    """Every stream of one key prefix on one embedded server, behind one condition."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.inboxes: dict[str, dict[str, _Stream]] = {}  # recipient -> type -> stream
        self.broadcasts: dict[str, _Stream] = {}  # type -> stream
        self.seq = 0
        self.last_id = (0, 0)
        self.swept_ms = 0

    def next_id(self, now_ms: int) -> str:
        """Stream-style ids ("<ms>-<n>"), increasing even if the clock steps back."""
        ms, n = self.last_id
        self.last_id = (now_ms, 0) if now_ms > ms else (ms, n + 1)
        return f"{self.last_id[0]}-{self.last_id[1]}"

    def sweep(self, oldest_ms: int) -> None:
        """Drop expired signals everywhere, and streams (with their cursors) left empty."""
        for streams in [*self.inboxes.values(), self.broadcasts]:
            for kind, stream in list(streams.items()):
                stream.drop_older_than(oldest_ms)
                if not stream.entries:
                    del streams[kind]
        for recipient in [r for r, streams in self.inboxes.items() if not streams]:
            del self.inboxes[recipient]


class LocalSignals:
    """``clock``: unix seconds, for ages; ``root``: the key prefix's team root, naming the board."""

    def __init__(self, server: Any, root: str, clock: Callable[[], float], ttl_ms: int):
        self.clock = clock
        self.ttl_ms = ttl_ms
        self._board = server.local(("signal-board", root), _Board)

    def send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None, sent_at: float) -> str:
        now_ms = int(sent_at * 1000)
        board = self._board
        with board.changed:
            if now_ms - board.swept_ms >= SWEEP_EVERY_S * 1000:
                board.sweep(now_ms - self.ttl_ms)
                board.swept_ms = now_ms
            board.seq += 1
            signal = _Signal(board.seq, now_ms, board.next_id(now_ms), kind, sender, blob, sent_at)
            if recipients is None:
                streams = [board.broadcasts.setdefault(kind, _Stream())]
            else:
                streams = [board.inboxes.setdefault(r, {}).setdefault(kind, _Stream()) for r in recipients]
            for stream in streams:
                stream.drop_older_than(now_ms - self.ttl_ms)
                stream.entries.append(signal)
            board.changed.notify_all()
        return signal.entry_id

    def receive(self, me: str, kind: str | None, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        board = self._board
        with board.changed:
            while True:
                found = self._take(me, kind)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    break
                board.changed.wait(remaining)
        found.sort(key=lambda pair: pair[0].seq)
        return [Received(s.kind, s.sender, s.blob, target, s.sent_at, s.entry_id) for s, target in found]

    def _take(self, me: str, kind: str | None) -> list[tuple[_Signal, str | None]]:
        """What ``me`` has not been given yet, of one type or of every type (the board's lock held)."""
        board = self._board
        inbox = board.inboxes.get(me, {})
        streams: list[tuple[Any, str | None]]
        if kind is None:
            streams = [(stream, me) for stream in inbox.values()]
            streams += [(stream, None) for stream in board.broadcasts.values()]
        else:
            streams = [(s, target) for s, target in ((inbox.get(kind), me), (board.broadcasts.get(kind), None)) if s]
        oldest_ms = int(self.clock() * 1000) - self.ttl_ms
        found: list[tuple[_Signal, str | None]] = []
        for stream, target in streams:
            stream.drop_older_than(oldest_ms)
            found += [(signal, target) for signal in stream.take(me)]
        return found
