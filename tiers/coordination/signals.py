"""Signals in Redis Streams, shared by every process on the Redis (base.SignalStore).

Streams, one per (recipient, signal type) for targeted signals and one per type for broadcasts;
every recipient keeps a cursor (the last entry id it was given) per stream. One Lua call reads
every wanted stream past the cursors (one XREAD) and moves the cursors, so two readers acting as
the same agent never both get a signal. A reader asking for one type leaves other types unread.
A counter stamped on every signal puts signals from several streams back in sending order.

Waiting: a reader with a timeout blocks (XREAD BLOCK) on the streams it just read, after the last
entry it was given from each, so a signal sent in between wakes it. A reader of every type also
waits on its bells (streams of MAXLEN 1), which a send rings only when the signal's type is new to
the recipient (its stream is one nobody waits on yet); the bells are read before the types sets,
so no new type slips in between. Expiry: streams are trimmed to the coordination TTL (XADD MINID,
on the Redis clock), reads skip older entries, and every key expires after the TTL of silence.
The embedded engine keeps the same contract in its process (tiers/coordination/local_signals.py).

Sending and receiving each take effect once (tiers/scripts.py, once.lua): a send sent again
after a lost reply appends nothing and returns the first entry id; a read sent again returns
the signals the first read delivered (and moved the cursors past), so none is lost or doubled.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from tiers.coordination.base import Received
from tiers.coordination.context import Context, team_source
from tiers.failures import reading, writing

MAX_PER_STREAM = 1000  # entries one read takes from one stream; the rest come with the next read

SEND = team_source("signal_send")
RECEIVE = team_source("signal_receive")


class RedisSignals:
    def __init__(self, context: Context, ttl_ms: int):
        self.client = context.client
        self.keys = context.keys
        self.ttl_ms = ttl_ms
        self._send = context.script(SEND, once=True)
        self._receive = context.script(RECEIVE, once=True)
        self._broadcast_marker = f"{self.keys.root}{{signals}}:all:".encode()

    def send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None, sent_at: float) -> str:
        keys: list[str] = [self.keys.signal_counter()]
        if recipients is None:
            keys += [self.keys.broadcast(kind), self.keys.broadcast_types(), self.keys.broadcast_bell()]
        else:
            for recipient in recipients:
                keys += [self.keys.inbox(recipient, kind), self.keys.inbox_types(recipient), self.keys.bell(recipient)]
        entry = writing("redis", lambda: self._send(keys=keys, args=[kind, self.ttl_ms, sender, blob, repr(sent_at)]))
        return entry.decode()

    def receive(self, me: str, kind: str | None, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            streams, bells = self._streams(me, kind, wait=timeout > 0)
            if streams:
                keys = [self.keys.cursor(me), *streams]
                found, after = writing("redis", functools.partial(self._receive, keys=keys, args=[self.ttl_ms, MAX_PER_STREAM]))
                if found:
                    return self._decode(found, me)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # block until an entry arrives after what we just read, or a bell rings (ms; 0 would mean forever)
            wake = {**bells, **dict(zip(streams, after))} if streams else bells
            reading("redis", functools.partial(self.client.xread, wake, count=1, block=max(1, int(remaining * 1000))))

    def _streams(self, me: str, kind: str | None, wait: bool) -> tuple[list[str], dict[str, bytes]]:
        """The streams to read and, for a reader of every type that will wait, its bells' last ids.

        The bells are read before the types sets: a type that joins after the read rings after it.
        """
        if kind is not None:
            return [self.keys.inbox(me, kind), self.keys.broadcast(kind)], {}
        bells = [self.keys.bell(me), self.keys.broadcast_bell()] if wait else []
        pipe = self.client.pipeline(transaction=False)
        for bell in bells:
            pipe.xrevrange(bell, count=1)
        pipe.smembers(self.keys.inbox_types(me))
        pipe.smembers(self.keys.broadcast_types())
        *tops, mine, everyone = reading("redis", pipe.execute)
        streams = [self.keys.inbox(me, k.decode()) for k in sorted(mine)]
        streams += [self.keys.broadcast(k.decode()) for k in sorted(everyone)]
        return streams, {bell: top[0][0] if top else b"0-0" for bell, top in zip(bells, tops)}

    def _decode(self, found: list[Any], me: str) -> list[Received]:
        signals = []
        for stream, entry_id, flat in found:
            fields = dict(zip(flat[::2], flat[1::2]))
            target = None if stream.startswith(self._broadcast_marker) else me
            signals.append((int(fields[b"seq"]), Received(
                fields[b"type"].decode(), fields[b"sender"].decode(), fields[b"data"], target,
                float(fields[b"sent_at"]), entry_id.decode(),
            )))
        signals.sort(key=lambda pair: pair[0])
        return [signal for _, signal in signals]
