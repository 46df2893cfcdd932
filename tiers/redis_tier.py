"""A memory tier in Redis: STM (raw contents) or IM (zstd-compressed contents).

One class serves both tiers; the only difference is whether a codec compresses the payload.
Every operation is one Lua call, so a store with all its index updates is one round trip
(invariant 4). Methods that read take an optional pipeline, so the engine can ask STM and IM in
the same round trip; queued calls return a decoder to apply to the pipeline's answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tiers.base import DerivedRow
from tiers.codec import PayloadCodec, decode_derived, decode_records, encode_record, payload_sizes
from tiers.failures import reading, writing
from tiers.keys import REDIS_TIERS, KeySchema, TierKeys
from tiers.record import MemoryRecord
from tiers.scripts import Scripts

Decoder = Callable[[Any], list[MemoryRecord]]


def _score(value: float | int | None, default: str) -> str:
    return default if value is None else repr(value)


def since_score(now: float) -> str:
    """The ``since`` score of a memory entering a tier at unix time ``now``: whole microseconds.

    Integer scores keep Redis's small sorted sets (listpacks) cheap: a listpack stores an
    integer score as an integer, but "1763742000.123456" as text that every insert scanning past
    it parses again (~5 us a ZADD member on a 128-member set, ~4x an integer score's cost).
    """
    return str(round(now * 1_000_000))


def since_seconds(score: Any) -> Any:
    """The unix time a ``since`` score stands for (a float, or an array of them)."""
    return score / 1_000_000


# the retention rate of the default decay settings, 0.95 per 100 steps (MemoryConfig.retention_rate)
DEFAULT_RETENTION_RATE = -math.log(0.95) / 100


class RedisTier:
    def __init__(self, name: str, client: Any, keys: KeySchema, scripts: Scripts, codec: PayloadCodec | None,
                 retention_rate: float = DEFAULT_RETENTION_RATE):
        self.name = name
        self.retention_rate = repr(float(retention_rate))  # proposed to an agent's first store (lib.lua)
        self.client = client
        self.keys = keys
        self.scripts = scripts
        self.codec = codec
        self.other = next(tier for tier in REDIS_TIERS if tier != name)  # a put skips what either holds

    # -- keys ---------------------------------------------------------------------------------
    def tier_keys(self, agent_id: str) -> TierKeys:
        return self.keys.tier(agent_id, self.name)

    def _base_keys(self, agent_id: str) -> list[str]:
        return self.tier_keys(agent_id).all()

    # -- writes -------------------------------------------------------------------------------
    def put_sections(self, records: Sequence[MemoryRecord], now: float) -> list[Any]:
        """The ARGV sections of put_records (lib.lua), already in the shape of each command."""
        since = since_score(now)
        fields: list[Any] = []
        steps: list[Any] = []
        importances: list[Any] = []
        sinces: list[Any] = []
        for record in records:
            memory_id = record.memory_id
            fields += (memory_id, encode_record(record, self.codec))
            steps += (record.step_number, memory_id)
            importances += (repr(record.importance_score), memory_id)
            sinces += (since, memory_id)
        return [len(records), *fields, *steps, *importances, *sinces]

    def put_call(
        self,
        agent_id: str,
        records: Sequence[MemoryRecord],
        now: float,
        *,
        embed_text: bool = False,
        leaving: str = "",
        skip_stored: bool = False,
    ) -> tuple[list[str], list[Any]]:
        """The put script's keys and arguments. ``embed_text`` queues the records for the text
        embedder; ``leaving`` names the tier they come from (logged as left in the same call);
        ``skip_stored`` leaves out records either Redis tier already holds (put.lua)."""
        keys = self._base_keys(agent_id) + [
            self.keys.meta(agent_id), self.keys.changes(agent_id), self.keys.pending(agent_id),
            self.keys.tier(agent_id, self.other).data,
        ]
        newest = max(record.step_number for record in records)
        return keys, [self.name, leaving, "1" if embed_text else "0", newest, "1" if skip_stored else "0",
                      self.retention_rate, *self.put_sections(records, now)]

    def put_many(
        self, agent_id: str, records: Sequence[MemoryRecord], now: float, *, embed_text: bool = False,
        leaving: str = "", skip_stored: bool = False,
    ) -> int | None:
        """Store records; returns the agent's new version (None for an empty batch)."""
        if not records:
            return None
        keys, args = self.put_call(agent_id, records, now, embed_text=embed_text, leaving=leaving,
                                   skip_stored=skip_stored)
        return self._call("put", keys, args)

    def move_in(self, source: RedisTier, agent_id: str, records: Sequence[MemoryRecord], now: float) -> int:
        """Atomically store ``records`` here and delete them from ``source`` (same agent slot)."""
        keys = self._base_keys(agent_id) + [self.keys.meta(agent_id)] + source._base_keys(agent_id)
        keys.append(self.keys.changes(agent_id))
        return self._call("move", keys, [self.name, source.name, self.retention_rate, *self.put_sections(records, now)])

    def delete_many(
        self, agent_id: str, memory_ids: Iterable[str], drop_access: bool = False, moved_to: str = ""
    ) -> int:
        """Delete records; ``moved_to`` names the tier that now holds them (logged in the same call)."""
        ids = list(memory_ids)
        if not ids:
            return 0
        keys = self._base_keys(agent_id) + [
            self.keys.meta(agent_id),
            self.keys.reads(agent_id),
            self.keys.seen(agent_id),
            self.keys.changes(agent_id),
            self.keys.pending(agent_id),
        ]
        args = ["1" if drop_access else "0", self.name, moved_to, *ids]
        return self._call("delete", keys, args)

    # -- reads --------------------------------------------------------------------------------
    def _access_keys(self, agent_id: str) -> list[str]:
        return [self.keys.reads(agent_id), self.keys.seen(agent_id), self.keys.meta(agent_id)]

    def queue_get(
        self, pipe: Any, agent_id: str, memory_ids: Sequence[str], now: float | None, keep_payload: bool = False
    ) -> Decoder:
        tk = self.tier_keys(agent_id)
        keys = [tk.data, *self._access_keys(agent_id)]
        unique = dict.fromkeys(memory_ids)  # a repeated id is one record, and one read
        self.scripts.queue(pipe, "get", keys, ["" if now is None else repr(now), *unique])
        return lambda raw: self.decode(agent_id, raw, keep_payload)

    def range_call(
        self,
        agent_id: str,
        *,
        by: str = "step",
        lo: float | None = None,
        hi: float | None = None,
        memory_type: str | None = None,
        reverse: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[str], list[Any]]:
        """The index and data keys and the arguments of a range read (range.lua), so a caller
        reading both Redis tiers in one script passes the same ones."""
        tk = self.tier_keys(agent_id)
        if by not in ("step", "importance"):
            raise ValueError(f"unknown index {by!r}")
        args = [_score(lo, "-inf"), _score(hi, "+inf"), offset, -1 if limit is None else limit,
                "1" if reverse else "0", memory_type or ""]
        return [tk.step if by == "step" else tk.importance, tk.data], args

    def get_many(
        self, agent_id: str, memory_ids: Sequence[str], now: float | None = None, keep_payload: bool = False
    ) -> list[MemoryRecord]:
        """Records of the ids still here; ``keep_payload``: with their compressed payloads (see
        MemoryRecord.stored_payload), for a move."""
        return self._run(lambda pipe: self.queue_get(pipe, agent_id, memory_ids, now, keep_payload))

    def range(self, agent_id: str, **query: Any) -> list[MemoryRecord]:
        """Records in step or importance order (never a counted read)."""
        keys, args = self.range_call(agent_id, **query)
        raw = reading(self.name, lambda: self.scripts.call("range", [*keys, *self._access_keys(agent_id)], args))
        return self.decode(agent_id, raw)

    def derived(self, agent_id: str, memory_ids: Sequence[str] | None = None) -> Iterator[list[DerivedRow]]:
        """What the in-process indices need (Tier.derived): one chunk."""
        data = self.tier_keys(agent_id).data

        def run() -> list[DerivedRow]:
            if memory_ids is None:
                pairs: Any = self.client.hscan_iter(data, count=1000)
            else:
                pairs = zip(memory_ids, self.client.hmget(data, memory_ids)) if memory_ids else ()
            return [(m if isinstance(m, str) else m.decode(), *decode_derived(blob, self.codec))
                    for m, blob in pairs if blob is not None]

        yield reading(self.name, run)

    def held(self, agent_id: str, memory_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(memory_ids))
        if not ids:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for memory_id in ids:
            pipe.hexists(self.tier_keys(agent_id).data, memory_id)
        return {memory_id for memory_id, there in zip(ids, reading(self.name, pipe.execute)) if there}

    def set_embeddings(self, agent_id: str, rewritten: Sequence[tuple[str, bytes, bytes]]) -> list[str]:
        """Write records whose vectors were rewritten: (memory_id, blob read, new blob); a record
        that changed since it was read is skipped. Returns the skipped ids."""
        if not rewritten:
            return []
        keys = [self.tier_keys(agent_id).data, self.keys.meta(agent_id), self.keys.changes(agent_id),
                self.keys.pending(agent_id)]
        args: list[Any] = [self.name]
        for memory_id, before, after in rewritten:
            args += (memory_id, before, after)
        skipped = self._call("set_vectors", keys, args)
        return [m.decode() for m in skipped]

    def memory_ids(self, agent_id: str) -> list[str]:
        """Every memory id the tier holds for the agent (an admin path)."""
        return [m.decode() for m in reading(self.name, lambda: self.client.hkeys(self.tier_keys(agent_id).data))]

    def count(self, agent_id: str) -> int:
        return int(reading(self.name, lambda: self.client.hlen(self.tier_keys(agent_id).data)))

    def stats(self, agent_id: str, sample: int = 64) -> dict[str, Any]:
        """Count, stored bytes, importance summary, type counts, and the payload compression
        ratio measured on a random sample of records."""
        tk = self.tier_keys(agent_id)
        pipe = self.scripts.batch()
        self.scripts.queue(pipe, "tier_stats", [tk.data, tk.importance], [])
        pipe.hrandfield(tk.data, sample, withvalues=True)
        summary, sampled = reading(self.name, lambda: self.scripts.execute(pipe))
        count, stored, lo, hi, total = summary[:5]
        stored_payload = raw_payload = 0
        for blob in (sampled or [])[1::2]:
            stored_size, raw_size = payload_sizes(blob, self.codec)
            stored_payload += stored_size
            raw_payload += raw_size
        return {
            "count": int(count),
            "bytes": int(stored),
            "types": {summary[i].decode(): int(summary[i + 1]) for i in range(5, len(summary), 2)},
            "importance_min": float(lo) if lo else None,
            "importance_max": float(hi) if hi else None,
            "importance_sum": float(total),
            "sample_raw_bytes": raw_payload,
            "sample_payload_bytes": stored_payload,
        }

    def demotion_candidates(
        self, agent_id: str, expired_before: float, limit: int, keep: int, read_ids: Sequence[str],
    ) -> tuple[list[str], int, list[tuple[str, float]], list[tuple[str, float, float]]]:
        """What maintenance chooses its demotions from, read from the tier's indices in one call
        (victims.lua): the ids that entered before ``expired_before`` (unix time); when the others
        number more than ``limit``, how many of them to demote (down to ``keep``) and the lowest
        retention keys as (id, key), enough that those are among them and the ``read_ids`` held
        here, returned as (id, key, step); else 0 and no keys."""
        tk = self.tier_keys(agent_id)
        expired, excess, lowest, read = reading(self.name, lambda: self.scripts.call(
            "victims", [tk.since, tk.retention, tk.step], [since_score(expired_before), limit, keep, *read_ids]))
        return ([m.decode() for m in expired], int(excess),
                [(lowest[i].decode(), float(lowest[i + 1])) for i in range(0, len(lowest), 2)],
                [(read[i].decode(), float(read[i + 1]), float(read[i + 2])) for i in range(0, len(read), 3)])

    # -- plumbing -----------------------------------------------------------------------------
    def decode(self, agent_id: str, raw: list[Any], keep_payload: bool = False) -> list[MemoryRecord]:
        """Records from a collect() answer: ids, blobs, and sparse (position, count, seen) triples."""
        ids, blobs, access = raw
        stats = {int(access[i]) - 1: (int(access[i + 1]), access[i + 2] or None) for i in range(0, len(access), 3)}
        return decode_records(agent_id, ids, blobs, self.name, self.codec, stats, keep_payload)

    def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A write script."""
        return writing(self.name, lambda: self.scripts.call(name, keys, args))

    def _run(self, queue: Callable[[Any], Decoder]) -> list[MemoryRecord]:
        pipe = self.scripts.batch()
        decoder = queue(pipe)
        (raw,) = reading(self.name, lambda: self.scripts.execute(pipe))
        return decoder(raw)
