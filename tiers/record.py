"""The one typed record that crosses every layer.

Tiers produce and consume :class:`MemoryRecord`; only the public edge turns it into the
"Memory Structure" dict (:meth:`MemoryRecord.to_dict`). Contents travel as their msgpack bytes,
so a record is cheap to move between tiers and every ``contents`` read is a fresh object: a
caller mutating a returned dict can never corrupt a cached or stored copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack
import ormsgpack

from embeddings.resolution import dimension, restore, restore_one

MEMORY_TYPES = ("state", "action", "interaction")
TIERS = ("stm", "im", "ltm")
TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}  # lower = higher resolution


@dataclass(frozen=True, slots=True)
class Embeddings:
    """A memory's vectors as stored bytes (embeddings/resolution.py decodes them).

    The state vector is kept at the resolution of the tier that holds the memory: full (STM),
    compressed (IM) or abstract (LTM); the dict form shows it under that name. The text
    vector (the contents embedded by the text model) follows the same resolutions and names its
    own, since it may arrive after the memory has moved.
    """

    full_vector: bytes | None = None
    compressed_vector: bytes | None = None
    abstract_vector: bytes | None = None
    text_resolution: str | None = None
    text_vector: bytes | None = None

    @property
    def state(self) -> tuple[str, bytes] | None:
        """(resolution, bytes) of the state vector, the finest one kept."""
        for resolution, blob in (("full", self.full_vector), ("compressed", self.compressed_vector),
                                 ("abstract", self.abstract_vector)):
            if blob is not None:
                return resolution, blob
        return None

    @property
    def text(self) -> tuple[str, bytes] | None:
        return None if self.text_vector is None else (self.text_resolution or "full", self.text_vector)

    def to_dict(self) -> dict[str, list[float] | None]:
        return {
            name: None if blob is None else _decode_vector(blob, resolution)
            for name, resolution, blob in (
                ("full_vector", "full", self.full_vector),
                ("compressed_vector", "compressed", self.compressed_vector),
                ("abstract_vector", "abstract", self.abstract_vector),
            )
        }

    def pack(self) -> list[Any] | None:
        if self is NO_EMBEDDINGS:  # most records (no vectors): every store pays this
            return None
        fields = [self.full_vector, self.compressed_vector, self.abstract_vector, self.text_resolution, self.text_vector]
        return None if fields == _NO_FIELDS else fields

    @classmethod
    def unpack(cls, packed: list[Any] | None) -> Embeddings:
        return NO_EMBEDDINGS if not packed else cls(*packed)


def _decode_vector(blob: bytes, resolution: str) -> list[float]:
    return restore_one(blob, resolution).tolist()


NO_EMBEDDINGS = Embeddings()
_NO_FIELDS = [None] * 5


def parse_seen(seen: bytes | str) -> tuple[float, int | None]:
    """(unix time, the agent's newest step then) of a last read, from the agent's ``seen`` hash
    (``"<time>|<step>"``, the step empty when the agent had stored none)."""
    when, _, step = (seen.decode() if isinstance(seen, bytes) else seen).partition("|")
    return float(when), int(float(step)) if step else None


def unpack_contents(blob: bytes) -> Any:
    """Decode stored contents. ormsgpack is 3x faster than msgpack at building the objects
    (every row of every answer pays this), but takes only string map keys; contents with other
    keys (ints, say) fall back to msgpack, which reads anything msgpack wrote."""
    try:
        return ormsgpack.unpackb(blob)
    except ormsgpack.MsgpackDecodeError:
        return msgpack.unpackb(blob, strict_map_key=False)  # raw=False is the default


class MemoryRecord(NamedTuple):
    """One memory, immutable. A named tuple: records are built for every row of every answer and
    every stored memory, and a tuple is built in under half the time of an instance dict. Records
    are never ordered (merges sort by explicit keys, memory/_engine/merge.py): comparing two raises, as it
    did when this was a dataclass."""

    memory_id: str
    agent_id: str
    step_number: int
    memory_type: str
    timestamp: float  # unix time the memory was stored
    importance_score: float
    contents_blob: bytes  # msgpack of the stored contents, exactly as given
    embeddings: Embeddings = NO_EMBEDDINGS
    retrieval_count: int = 0
    last_access_time: float | None = None
    last_access_step: int | None = None  # the agent's newest step when it was last read
    tier: str = "stm"
    compression_level: int = 0
    position: tuple[float, ...] | None = None  # (x, y) or (x, y, z), read from the contents at store time
    # (dictionary id, zstd payload) of the contents as IM keeps them, on records read for a move
    # to LTM, which keeps the same payload instead of compressing the contents again
    stored_payload: tuple[int, bytes] | None = None

    def __lt__(self, other: Any) -> bool:
        raise TypeError("memory records are not ordered: sort them by a key")

    def __le__(self, other: Any) -> bool:
        return self.__lt__(other)

    def __gt__(self, other: Any) -> bool:
        return self.__lt__(other)

    def __ge__(self, other: Any) -> bool:
        return self.__lt__(other)

    @property
    def contents(self) -> Any:
        return unpack_contents(self.contents_blob)

    def with_access(self, count: int, seen: bytes | str | None) -> MemoryRecord:
        """Return a copy carrying the access statistics read from Redis."""
        if seen is None:
            return self._replace(retrieval_count=count)
        last_time, last_step = parse_seen(seen)
        return self._replace(retrieval_count=count, last_access_time=last_time, last_access_step=last_step)

    def to_dict(self, vectors: dict[str, list[float] | None] | None = None) -> dict[str, Any]:
        """The "Memory Structure" dict form; every call builds fresh objects (safe to mutate).
        ``vectors``: the embeddings' dict form, when the caller decoded it already (to_dicts)."""
        (memory_id, agent_id, step_number, memory_type, timestamp, importance, contents_blob, embeddings,
         retrieval_count, last_access, _, tier, compression_level, _, _) = self  # this runs for every row of every answer
        return {
            "memory_id": memory_id,
            "agent_id": agent_id,
            "step_number": step_number,
            "timestamp": timestamp,
            "contents": unpack_contents(contents_blob),
            "metadata": {
                "creation_time": timestamp,
                "last_access_time": timestamp if last_access is None else last_access,
                "compression_level": compression_level,
                "importance_score": importance,
                "retrieval_count": retrieval_count,
                "memory_type": memory_type,
                "tier": tier,
            },
            "tier": tier,
            "embeddings": (
                vectors if vectors is not None
                else {"full_vector": None, "compressed_vector": None, "abstract_vector": None}
                if embeddings is NO_EMBEDDINGS
                else embeddings.to_dict()
            ),
        }


_VECTOR_FIELDS = (("full_vector", "full"), ("compressed_vector", "compressed"), ("abstract_vector", "abstract"))


def to_dicts(records: Sequence[MemoryRecord]) -> list[dict[str, Any]]:
    """The dict forms of many records, their vectors decoded together: one numpy call per
    resolution and size instead of one per vector (most of an answer's cost otherwise)."""
    vectors: list[dict[str, list[float] | None]] = [
        {"full_vector": None, "compressed_vector": None, "abstract_vector": None} for _ in records]
    groups: dict[tuple[str, str, int], list[int]] = {}
    for position, record in enumerate(records):
        embeddings = record.embeddings
        if embeddings is NO_EMBEDDINGS:
            continue
        for name, resolution in _VECTOR_FIELDS:
            blob = getattr(embeddings, name)
            if blob is not None:
                groups.setdefault((name, resolution, len(blob)), []).append(position)
    for (name, resolution, _), positions in groups.items():
        blobs = [getattr(records[p].embeddings, name) for p in positions]
        decoded = restore(blobs, resolution, dimension(blobs[0], resolution)).tolist()
        for position, vector in zip(positions, decoded):
            vectors[position][name] = vector
    return [record.to_dict(vector) for record, vector in zip(records, vectors)]
