"""Signals between agents: each reaches each recipient once, in order, and none overwrites another.

SignalBus checks a call (tier, type, recipients, data, timeout) and hands it to the bus the
connection needs: StreamSignalBus on a Redis server (below), LocalSignalBus (local_signals.py)
on the embedded engine, which belongs to one process.

Redis Streams, one per (recipient, signal type) for targeted signals and one per type for
broadcasts; every recipient keeps a cursor (the last entry id it was given) per stream. One Lua
call reads every wanted stream past the cursors (one XREAD) and moves the cursors, so two readers
acting as the same agent never both get a signal. A reader asking for one type leaves other types
unread. A counter stamped on every signal puts signals from several streams back in sending
order. A broadcast reaches every agent that reads, the sender too (so ``sender`` tells who sent it).

Waiting: a reader with a timeout blocks (XREAD BLOCK) on the streams it just read, after the last
entry it was given from each, so a signal sent in between wakes it. A reader of every type also
waits on its bells (streams of MAXLEN 1), which a send rings only when the signal's type is new to
the recipient (its stream is one nobody waits on yet); the bells are read before the types sets,
so no new type slips in between. Expiry: streams are trimmed to the coordination TTL (XADD MINID,
on the Redis clock), reads skip older entries, and every key expires after the TTL of silence.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from memory.team import values
from memory.team.access import AccessTier, AgentCredentials, agent_id
from memory.team.errors import translated
from memory.team.keys import signal_type as check_signal_type
from memory.team.ttl import TTLStrategy, seconds

MAX_PER_STREAM = 1000  # entries one read takes from one stream; the rest come with the next read

SEND = """
-- KEYS[1] the signal counter (orders signals across streams); then per recipient three keys:
-- stream, types set, bell stream
-- ARGV[1] signal type, ARGV[2] ttl ms, ARGV[3] sender, ARGV[4] msgpack data, ARGV[5] sent_at (unix s)
-- returns the first entry id
local t = redis.call('TIME')
local minid = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2]))
local seq = redis.call('INCR', KEYS[1])
local first
for i = 2, #KEYS, 3 do
  local id = redis.call('XADD', KEYS[i], 'MINID', minid, '*',
    'type', ARGV[1], 'sender', ARGV[3], 'data', ARGV[4], 'sent_at', ARGV[5], 'seq', seq)
  first = first or id
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  if redis.call('SADD', KEYS[i + 1], ARGV[1]) == 1 then  -- a type new to the recipient: ring its bell
    redis.call('XADD', KEYS[i + 2], 'MAXLEN', '1', '*', 'type', ARGV[1])
    redis.call('PEXPIRE', KEYS[i + 2], ARGV[2])
  end
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[2])
end
return first
"""

RECEIVE = """
-- KEYS[1] the recipient's cursor hash, KEYS[2..] the streams to read (at least one)
-- ARGV[1] ttl ms, ARGV[2] max entries per stream
-- returns {{stream, id, fields}...} and, per stream, the id a blocking read waits for entries after
local n = #KEYS - 1
local after = redis.call('HMGET', KEYS[1], unpack(KEYS, 2))
local args, position = {'COUNT', ARGV[2], 'STREAMS'}, {}
for i = 1, n do
  after[i] = after[i] or '0-0'
  position[KEYS[i + 1]] = i
  args[3 + i] = KEYS[i + 1]
  args[3 + n + i] = after[i]
end
local out, moved, oldest = {}, {}, nil
for _, read in ipairs(redis.call('XREAD', unpack(args)) or {}) do  -- Redis answers nil when nothing is new
  local key, entries = read[1], read[2]
  if #entries > 0 then
    if not oldest then  -- entries older than the TTL are skipped, on the Redis clock
      local t = redis.call('TIME')
      oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
    end
    local last = entries[#entries][1]
    after[position[key]] = last
    moved[#moved + 1] = key
    moved[#moved + 1] = last
    for _, entry in ipairs(entries) do
      if tonumber(string.match(entry[1], '^(%d+)')) > oldest then
        out[#out + 1] = {key, entry[1], entry[2]}
      end
    end
  end
end
if #moved > 0 then  -- the cursor lives as long as what it points into can be delivered
  redis.call('HSET', KEYS[1], unpack(moved))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {out, after}
"""


class SignalBus:
    """What every signal bus checks, whatever keeps the signals: the caller's tier, the type,
    the recipients, the data and the timeout. Subclasses deliver (``_send``, ``_receive``)."""

    @translated("write")
    def send(
        self,
        credentials: AgentCredentials,
        kind: str,
        data: Any = None,
        target_agent: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> str:
        """Send to ``target_agent``, to each of ``recipients``, or (neither) broadcast. Returns the
        (first) entry id, or "" when ``recipients`` is empty."""
        credentials.require(AccessTier.CONTRIBUTOR, "send_signal")
        check_signal_type(kind)
        if target_agent is not None:
            recipients = [target_agent]
        if recipients is not None:
            recipients = list(dict.fromkeys(agent_id(recipient, "target_agent") for recipient in recipients))
            if not recipients:
                return ""
        return self._send(credentials.agent_id, kind, values.pack(data, "signal data"), recipients)

    @translated("read")
    def receive(
        self, credentials: AgentCredentials, kind: str | None = None, timeout: float = 0.0
    ) -> list[dict[str, Any]]:
        """Signals for this agent not yet given to it, oldest first; waits up to ``timeout`` s for one."""
        credentials.require(AccessTier.OBSERVER, "receive_signals")
        if kind is not None:
            check_signal_type(kind)
        return self._receive(credentials.agent_id, kind, seconds(timeout, "timeout", zero=True))

    def _send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None) -> str:
        raise NotImplementedError

    def _receive(self, me: str, kind: str | None, timeout: float) -> list[dict[str, Any]]:
        raise NotImplementedError


class StreamSignalBus(SignalBus):
    """Signals in Redis Streams, shared by every process on the Redis (see the module docstring)."""

    def __init__(self, memory: Any):
        self.memory = memory
        self.keys = memory.keys
        self.ttl_ms = int(TTLStrategy.COORDINATION) * 1000
        self._send_script = memory.script(SEND)
        self._receive_script = memory.script(RECEIVE)

    def _send(self, sender: str, kind: str, blob: bytes, recipients: list[str] | None) -> str:
        keys: list[str] = [self.keys.signal_counter()]
        if recipients is None:
            keys += [self.keys.broadcast(kind), self.keys.broadcast_types(), self.keys.broadcast_bell()]
        else:
            for recipient in recipients:
                keys += [self.keys.inbox(recipient, kind), self.keys.inbox_types(recipient), self.keys.bell(recipient)]
        sent_at = repr(self.memory.clock())
        entry = self._send_script(keys=keys, args=[kind, self.ttl_ms, sender, blob, sent_at])
        return entry.decode()

    def _receive(self, me: str, kind: str | None, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            streams, bells = self._streams(me, kind, wait=timeout > 0)
            if streams:
                found, after = self._receive_script(
                    keys=[self.keys.cursor(me), *streams], args=[self.ttl_ms, MAX_PER_STREAM]
                )
                if found:
                    return self._decode(found, me)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            # block until an entry arrives after what we just read, or a bell rings (ms; 0 would mean forever)
            wake = {**bells, **dict(zip(streams, after))} if streams else bells
            self.memory.client.xread(wake, count=1, block=max(1, int(remaining * 1000)))

    def _streams(self, me: str, kind: str | None, wait: bool) -> tuple[list[str], dict[str, bytes]]:
        """The streams to read and, for a reader of every type that will wait, its bells' last ids.

        The bells are read before the types sets: a type that joins after the read rings after it.
        """
        if kind is not None:
            return [self.keys.inbox(me, kind), self.keys.broadcast(kind)], {}
        bells = [self.keys.bell(me), self.keys.broadcast_bell()] if wait else []
        pipe = self.memory.client.pipeline(transaction=False)
        for bell in bells:
            pipe.xrevrange(bell, count=1)
        pipe.smembers(self.keys.inbox_types(me))
        pipe.smembers(self.keys.broadcast_types())
        *tops, mine, everyone = pipe.execute()
        streams = [self.keys.inbox(me, k.decode()) for k in sorted(mine)]
        streams += [self.keys.broadcast(k.decode()) for k in sorted(everyone)]
        return streams, {bell: top[0][0] if top else b"0-0" for bell, top in zip(bells, tops)}

    def _decode(self, found: list[Any], me: str) -> list[dict[str, Any]]:
        broadcast_marker = f"{self.keys.root}{{signals}}:all:".encode()
        signals = []
        for stream, entry_id, flat in found:
            fields = dict(zip(flat[::2], flat[1::2]))
            target = None if stream.startswith(broadcast_marker) else me
            signals.append((int(fields[b"seq"]), delivered(
                fields[b"type"].decode(), fields[b"sender"].decode(), fields[b"data"], target,
                float(fields[b"sent_at"]), entry_id.decode(),
            )))
        signals.sort(key=lambda pair: pair[0])
        return [signal for _, signal in signals]


def delivered(kind: str, sender: str, blob: bytes, target: str | None, sent_at: float, entry_id: str) -> dict[str, Any]:
    """A signal as a recipient gets it (each recipient its own copy of the data)."""
    return {
        "signal_type": kind,
        "sender": sender,
        "data": values.unpack(blob),
        "target": target,
        "sent_at": sent_at,
        "id": entry_id,
    }
