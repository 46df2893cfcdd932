"""Export and import: an agent's memories as plain JSON objects (one a line in a file), lossless.

An exported memory keeps its id, step, type, creation time, importance, retrieval count and last
read, its contents (as JSON when JSON gives back the very same contents, else as the base64 of
their msgpack bytes: bytes, int keys, NaN), and, when asked, its vectors (base64 of their packed
form) and the tier that held it. Export pages through each agent's memories in step order, a
page per round trip, so a file of any size streams; import writes a batch per round trip.

Import is idempotent: a memory keeps its id, and an id some tier holds already is skipped, so a
file imported twice, or an import cut short and run again, stores each memory once. Without
``tiers`` every memory enters STM (maintenance moves them down as after any store); with it, each
goes back to the tier it was exported from. A memory that does not read as one is refused with a
typed error naming it (item N: line N of an export file); the batches before it are stored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from embeddings.resolution import RESOLUTIONS, restore_one
from memory import validation
from memory._engine.reads import Reads, until_settled
from tiers.codec import pack_contents
from tiers.errors import InvalidInputError, MemoryRetrievalException
from tiers.record import Embeddings, MemoryRecord, unpack_contents

FORMAT = "tiermem-memories"
VERSION = 1
PAGE = 1000  # memories per read while exporting, and per write while importing
TIERS = ("stm", "im", "ltm")
_FIELDS = frozenset({"agent_id", "memory_id", "step_number", "memory_type", "timestamp", "importance_score",
                     "contents", "contents_msgpack", "retrieval_count", "last_access_time", "last_access_step",
                     "tier", "vectors"})
_ID_MIDDLE = re.compile(r"[0-9a-f]{22}")


def header() -> dict[str, Any]:
    """The first line of an export file: what follows, and in which version of the format."""
    return {"format": FORMAT, "version": VERSION}


def is_header(item: Mapping[str, Any]) -> bool:
    if item.get("format") != FORMAT:
        return False
    if item.get("version") != VERSION:
        raise InvalidInputError(f"this export is version {validation.shown(item.get('version'))} of the format; "
                                f"this tiermem reads version {VERSION}")
    return True


def exported(record: MemoryRecord, *, vectors: bool, tiers: bool) -> dict[str, Any]:
    """One memory as a JSON-ready dict."""
    out: dict[str, Any] = {
        "agent_id": record.agent_id, "memory_id": record.memory_id, "step_number": record.step_number,
        "memory_type": record.memory_type, "timestamp": record.timestamp,
        "importance_score": record.importance_score,
    }
    readable = _as_json(record.contents_blob)
    if readable is None:
        out["contents_msgpack"] = base64.b64encode(record.contents_blob).decode()
    else:
        out["contents"] = readable
    out.update(retrieval_count=record.retrieval_count, last_access_time=record.last_access_time,
               last_access_step=record.last_access_step)
    if tiers:
        out["tier"] = record.tier
    if vectors:
        packed = record.embeddings.pack()
        out["vectors"] = None if packed is None else base64.b64encode(msgpack.packb(packed, use_bin_type=True)).decode()
    return out


def _as_json(blob: bytes) -> Any:
    """The contents, if JSON carries them exactly (they pack to the same bytes again); else None."""
    contents = unpack_contents(blob)
    try:
        again = json.loads(json.dumps(contents, allow_nan=False))
        return contents if pack_contents(again) == blob else None
    except (TypeError, ValueError):
        return None


def imported(item: Any, position: int, max_payload_bytes: int) -> MemoryRecord:
    """The record an exported memory stands for, its tier the one it was exported from ("stm"
    when the export did not say); InvalidInputError naming the item (counted from 1: the line of
    an export file) when it is not one."""
    try:
        return _imported(item, max_payload_bytes)
    except InvalidInputError as exc:
        raise InvalidInputError(f"item {position + 1} of the import: {exc}") from None


def _imported(item: Any, max_payload_bytes: int) -> MemoryRecord:
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"an exported memory is a JSON object, got {validation.shown(item)}")
    unknown = set(item) - _FIELDS
    if unknown:
        raise InvalidInputError(f"unknown fields {sorted(map(str, unknown))}")
    agent_id = validation.agent_id(item.get("agent_id"))
    step = validation.step(item.get("step_number"))
    memory_id = validation.memory_id(item.get("memory_id"))
    head, _, tail = memory_id.rpartition("-")
    if not (head.startswith(f"{agent_id}-") and _ID_MIDDLE.fullmatch(head[len(agent_id) + 1:]) and tail == str(step)):
        raise InvalidInputError(f"memory_id {validation.shown(memory_id)} is not an id of agent {agent_id} at step {step}")
    memory_type = validation.memory_type(item.get("memory_type"))
    timestamp = _time(item.get("timestamp"), "timestamp")
    importance = validation.importance(item.get("importance_score"), "importance_score")
    if ("contents" in item) == ("contents_msgpack" in item):
        raise InvalidInputError("give the contents either as contents or as contents_msgpack")
    if "contents" in item:
        blob = validation.contents(item["contents"], max_payload_bytes)
    else:
        blob = _packed_contents(item["contents_msgpack"], max_payload_bytes)
    count = validation.count(item.get("retrieval_count", 0), "retrieval_count")
    last_time = item.get("last_access_time")
    last_time = None if last_time is None else _time(last_time, "last_access_time")
    last_step = item.get("last_access_step")
    last_step = None if last_step is None else validation.step(last_step, "last_access_step")
    tier = item.get("tier", "stm")
    if tier not in TIERS:
        raise InvalidInputError(f"tier must be one of {', '.join(TIERS)}, got {validation.shown(tier)}")
    embeddings = _embeddings(item.get("vectors"))
    return MemoryRecord(memory_id, agent_id, step, memory_type, timestamp, importance, blob, embeddings, count,
                        last_time, last_step, tier)


def _time(value: Any, name: str) -> float:
    if not validation.is_number(value) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a unix time (a finite number >= 0), got {validation.shown(value)}")
    return float(value)


def _packed_contents(value: Any, max_payload_bytes: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidInputError(f"contents_msgpack must be base64 text, got {validation.shown(value)}")
    try:
        blob = base64.b64decode(value, validate=True)
        contents = unpack_contents(blob)
    except (binascii.Error, ValueError, msgpack.ExtraData) as exc:
        raise InvalidInputError(f"contents_msgpack does not hold msgpack contents: {exc}") from None
    if not isinstance(contents, dict):
        raise InvalidInputError(f"contents must be a dict, got {type(contents).__name__}")
    if len(blob) > max_payload_bytes:
        raise InvalidInputError(f"the contents are {len(blob)} bytes; the limit is {max_payload_bytes}")
    return blob


def _embeddings(value: Any) -> Embeddings:
    if value is None:
        return Embeddings.unpack(None)
    try:
        fields = msgpack.unpackb(base64.b64decode(value, validate=True), raw=False)
    except (binascii.Error, ValueError, TypeError, msgpack.ExtraData) as exc:
        raise InvalidInputError(f"vectors do not read as packed vectors: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 5:
        raise InvalidInputError("vectors do not read as packed vectors (five fields)")
    *by_resolution, text_resolution, text_vector = fields
    checked = list(zip(RESOLUTIONS, by_resolution))
    if (text_resolution is None) != (text_vector is None) or (text_resolution is not None and text_resolution not in RESOLUTIONS):
        raise InvalidInputError(f"the text vector's resolution {validation.shown(text_resolution)} is not one of "
                                f"{', '.join(RESOLUTIONS)}")
    if text_vector is not None:
        checked.append((text_resolution, text_vector))
    for resolution, blob in checked:
        if blob is None:
            continue
        try:
            if not isinstance(blob, bytes) or not math.isfinite(float(restore_one(blob, resolution).sum())):
                raise ValueError("not finite")
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"a {resolution} vector does not read as one: {exc}") from None
    return Embeddings.unpack(fields)


@dataclass
class ImportReport:
    """What an import did."""

    read: int = 0  # memories read
    imported: int = 0  # memories stored
    skipped: int = 0  # memories some tier held already (an earlier import, or the same file twice)
    agents: int = 0  # agents that received memories

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def export_memories(reads: Reads, agent_ids: Iterable[str], *, vectors: bool, tiers: bool) -> Iterator[dict[str, Any]]:
    """Each agent's memories in step order, a page per read (paging by step: the memories of the
    last step of a page that were emitted are remembered, so none comes twice or is missed)."""
    for agent_id in agent_ids:
        lo, emitted_at_lo, page = 0, set[str](), PAGE
        while True:
            query = {"by": "step", "lo": lo, "hi": None, "memory_type": None, "reverse": False, "limit": page}
            answer = until_settled(functools.partial(reads.range, agent_id, query))
            if answer.failed:  # a degraded read (degrade_reads) would export a part as the whole
                raise MemoryRetrievalException(f"the export of {agent_id} stopped: {', '.join(answer.failed)} "
                                               "did not answer")
            records = answer.records
            fresh = [r for r in records if r.step_number > lo or r.memory_id not in emitted_at_lo]
            for record in fresh:
                yield exported(record, vectors=vectors, tiers=tiers)
            if len(records) < page:
                break
            last = records[-1].step_number
            if last == lo and not fresh:
                page *= 2  # one step holds more memories than a page: read past them
                continue
            if last != lo:
                lo, emitted_at_lo = last, set()
            emitted_at_lo.update(r.memory_id for r in records if r.step_number == last)


def batches(items: Iterable[Any], max_payload_bytes: int, report: ImportReport) -> Iterator[list[MemoryRecord]]:
    """Validated records in batches of PAGE; a header (an export file's first line) is passed over."""
    batch: list[MemoryRecord] = []
    for position, item in enumerate(items):
        if position == 0 and isinstance(item, Mapping) and is_header(item):
            continue
        batch.append(imported(item, position, max_payload_bytes))
        report.read += 1
        if len(batch) >= PAGE:
            yield batch
            batch = []
    if batch:
        yield batch
