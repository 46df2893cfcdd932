"""Signals in Redis Streams, shared by every process on the Redis (base.SignalStore).

Streams, one per (recipient, signal type) in the recipient's slot (its ``{a:<agent>}`` tag) for
targeted signals, and one per type in the broadcasts' slot for broadcasts; every recipient keeps
a cursor (the last entry id it was given) per stream, in its own slot. A send appends to one
stream in one script call; a send to several recipients is one call per recipient (each in its
own slot). A signal's entry id is the Redis clock in microseconds (``<ms>-<us within the ms>``),
raised above the newest id the sending process has seen and the stream's last entry, so signals
from several streams (and primaries) come back in sending order: one process's in the order it
sent them, different processes' by when they were sent.

Receiving: the broadcast streams (another slot) are read past the reader's cursors first (as this
object last saw them, else read from Redis), then
one Lua call in the reader's slot reads its own streams past their cursors and moves every
cursor, the broadcasts' only if no other reader acting as the same agent moved them meanwhile
(else nothing is delivered and the read starts again). So two readers acting as one agent never
both get a signal, and a reader asking for one type leaves other types unread.

Waiting: a reader with a timeout blocks (XREAD BLOCK) in its own slot, on the streams it just
read (after the last entry it was given from each) and on its bell (a stream of MAXLEN 1). A
send rings the recipient's bell when the signal's type is new to it (a stream nobody waits on
yet). Broadcasts live in another slot, where one blocking read cannot reach, so a reader notes
its wait in the broadcasts' listeners before it reads them, and a broadcast rings the bell of
every listener. The bell is read before the listener is noted and the types sets are read after,
so no signal slips in between. Expiry: streams are trimmed to the coordination TTL (XADD MINID,
on the Redis clock), reads skip older entries, and every key expires after the TTL of silence.
The embedded engine keeps the same contract in its process (tiers/coordination/local_signals.py).

Sending and receiving each take effect once (tiers/scripts.py, once.lua): a send sent again
after a lost reply appends nothing and returns the first entry id; a read sent again returns
the signals the first read delivered (and moved the cursors past), so none is lost or doubled.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from tiers.coordination.base import Received
from tiers.coordination.context import Context, hash_reply, team_source
from tiers.failures import reading, writing

log = logging.getLogger(__name__)

MAX_PER_STREAM = 1000  # entries one read takes from one stream; the rest come with the next read

SEND = team_source("signal_send")
RECEIVE = team_source("signal_receive")
LISTEN = team_source("signal_listen")


def _order(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


class _Newest:
    """The newest entry id this process sent or was given: its next send's id is above it, so a
    process's signals keep their order even across primaries whose clocks differ."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest = (0, 0)

    def saw(self, entry_id: bytes | str) -> None:
        order = _order(entry_id)
        with self._lock:
            if order > self._newest:
                self._newest = order

    def floor(self) -> str:
        ms, n = self._newest
        return f"{ms}-{n}"


NEWEST = _Newest()


class _Plan(NamedTuple):
    """What one read looks at: the reader's own streams, the broadcast streams with the cursors
    they are read past, and (for a read that will wait) the bell's last id and the wait's name."""

    own: list[str]
    broadcasts: dict[str, bytes]
    bell: bytes | None
    wait: str | None


class RedisSignals:
    def __init__(self, context: Context, ttl_ms: int):
        self.client = context.client
        self.keys = context.keys
        self.ttl_ms = ttl_ms
        self._send = context.script(SEND, once=True)
        self._receive = context.script(RECEIVE, once=True)
        self._listen = context.script(LISTEN, read=True)
        # (agent, broadcast stream) -> its cursor as this object last saw it: a read of one type
        # skips reading the cursor first; a stale one is caught by the receive script (and replaced)
        self._cursors: dict[tuple[str, str], bytes] = {}

    # -- sending -------------------------------------------------------------------------------
    def send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None, sent_at: float) -> str:
        args = [kind, self.ttl_ms, sender, blob, repr(sent_at)]
        if recipients is None:
            entry = self._append([self.keys.broadcast(kind), self.keys.broadcast_types()], args)
            self._ring_listeners(kind, entry)
            return entry
        entries = [self._append([self.keys.inbox(r, kind), self.keys.inbox_types(r), self.keys.bell(r)], args)
                   for r in recipients]
        return entries[0]

    def _append(self, keys: list[str], args: list[Any]) -> str:
        entry = writing("redis", lambda: self._send(keys=keys, args=[*args, NEWEST.floor()])).decode()
        NEWEST.saw(entry)
        return entry

    def _ring_listeners(self, kind: str, entry: str) -> None:
        """Ring the bell of every agent waiting since before the broadcast ``entry`` was sent. A
        ring that fails loses no signal (the broadcast is in its stream): the waiter wakes at its
        timeout instead, so it is logged, not raised."""
        try:
            waits = self.client.zrangebyscore(self.keys.listeners(), _order(entry)[0], "+inf")
            if not waits:
                return
            pipe = self.client.pipeline(transaction=False)
            for agent in {wait.decode().partition(" ")[0] for wait in waits}:
                pipe.xadd(self.keys.bell(agent), {"type": kind}, maxlen=1)
                pipe.pexpire(self.keys.bell(agent), self.ttl_ms)
            pipe.execute()
        except RedisError as exc:  # the broadcast itself was sent: its waiters only wake later
            log.warning("broadcast %s was sent, but the waiting readers' bells could not be rung: %s", entry, exc)

    # -- receiving -----------------------------------------------------------------------------
    def receive(self, me: str, kind: str | None, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        plan = self._plan(me, kind, None)
        found, after = self._deliver(me, plan)
        if found or timeout <= 0:
            return found
        wait = f"{me} {secrets.token_hex(6)}"
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                plan = self._plan(me, kind, (wait, int(remaining * 1000) + 1))
                found, after = self._deliver(me, plan)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                # block until an entry arrives after what was just read, or the bell rings (ms; 0 would mean forever)
                wake = {self.keys.bell(me): plan.bell or b"0-0", **dict(zip(plan.own, after))}
                reading("redis", functools.partial(self.client.xread, wake, count=1, block=max(1, int(remaining * 1000))))
        finally:
            writing("redis", lambda: self.client.zrem(self.keys.listeners(), wait))

    def _plan(self, me: str, kind: str | None, wait: tuple[str, int] | None) -> _Plan:
        """The streams to read and their broadcast cursors. For a read that will wait, the bell's
        last id is read first, then the wait is noted (with it the broadcast types are read), so a
        broadcast sent after the types were read rings a bell rung after that id."""
        keys = self.keys
        if kind is not None and wait is None and (me, keys.broadcast(kind)) in self._cursors:
            stream = keys.broadcast(kind)
            return _Plan([keys.inbox(me, kind)], {stream: self._cursors[me, stream]}, None, None)
        pipe = self.client.pipeline(transaction=False)
        if wait is not None:
            pipe.xrevrange(keys.bell(me), count=1)
        if kind is None:
            pipe.smembers(keys.inbox_types(me))
            pipe.hgetall(keys.cursor(me))
            if wait is None:
                pipe.smembers(keys.broadcast_types())
        else:
            pipe.hget(keys.cursor(me), keys.broadcast(kind))
        replies = list(reading("redis", pipe.execute))
        bell = None
        if wait is not None:
            top = replies.pop(0)
            bell = top[0][0] if top else b"0-0"
            types = writing("redis", lambda: self._listen(keys=[keys.listeners(), keys.broadcast_types()], args=list(wait)))
            if kind is None:
                replies.append(types)
        if kind is not None:
            cursor = replies[0]
            return _Plan([keys.inbox(me, kind)], {keys.broadcast(kind): cursor or b"0-0"}, bell, wait and wait[0])
        mine, cursors, everyone = replies
        cursors = {_text(field): value for field, value in hash_reply(cursors).items()}
        own = [keys.inbox(me, k.decode()) for k in sorted(mine)]
        broadcasts = {stream: cursors.get(stream, b"0-0") for stream in (keys.broadcast(k.decode()) for k in sorted(everyone))}
        return _Plan(own, broadcasts, bell, wait and wait[0])

    def _deliver(self, me: str, plan: _Plan) -> tuple[list[Received], list[bytes]]:
        """Read the broadcasts past the plan's cursors, then deliver them with the reader's own
        streams in one call; read again while another reader acting as ``me`` moves the cursors.
        Returns the signals in sending order, and per own stream the id a blocking read waits after."""
        cursors = dict(plan.broadcasts)
        while True:
            read = self._read_broadcasts(cursors)
            args: list[Any] = [self.ttl_ms, MAX_PER_STREAM, len(cursors)]
            for stream, cursor in cursors.items():
                args += [stream, cursor, read[stream][-1][0] if read.get(stream) else cursor]
            keys = [self.keys.cursor(me), *plan.own]
            reply = writing("redis", functools.partial(self._receive, keys=keys, args=args))
            if int(reply[0]) == 0:  # another reader as this agent moved the broadcast cursors: read again
                cursors = dict(zip(cursors, (current if current is not None else b"0-0" for current in reply[1])))
                self._cursors.update(((me, stream), cursor) for stream, cursor in cursors.items())
                continue
            self._cursors.update(((me, stream), _encoded(args[3 * i + 5])) for i, stream in enumerate(cursors))
            _, own, after, oldest = reply
            return self._decode(me, own, read, int(oldest)), list(after)

    def _read_broadcasts(self, cursors: dict[str, bytes]) -> dict[str, list[tuple[bytes, dict[bytes, bytes]]]]:
        if not cursors:
            return {}
        replies = reading("redis", lambda: self.client.xread(dict(cursors), count=MAX_PER_STREAM)) or []
        if isinstance(replies, dict):  # RESP3: a map of stream -> [entries]
            replies = [(stream, found[0] if found else []) for stream, found in replies.items()]
        return {_text(stream): [(entry_id, fields) for entry_id, fields in entries] for stream, entries in replies}

    def _decode(self, me: str, own: Sequence[Any], broadcasts: dict[str, list[Any]], oldest: int) -> list[Received]:
        signals: list[tuple[tuple[int, int], str, Received]] = []

        def add(stream: str, entry_id: bytes, fields: dict[bytes, bytes], target: str | None) -> None:
            signals.append((_order(entry_id), stream, Received(
                fields[b"type"].decode(), fields[b"sender"].decode(), fields[b"data"], target,
                float(fields[b"sent_at"]), entry_id.decode())))

        for stream, entry_id, flat in own:
            add(_text(stream), entry_id, dict(zip(flat[::2], flat[1::2])), me)
        for stream, entries in broadcasts.items():
            for entry_id, fields in entries:
                if _order(entry_id)[0] > oldest:  # older than the TTL: skipped
                    add(stream, entry_id, fields, None)
        signals.sort(key=lambda item: (item[0], item[1]))
        if signals:
            NEWEST.saw(signals[-1][2].entry_id)
        return [signal for _, _, signal in signals]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encoded(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()

