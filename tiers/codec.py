"""Bytes in and out of the tiers: msgpack contents, zstd payloads with a trained dictionary.

No pickle anywhere (invariant 6). Contents are msgpack; in IM and LTM they are zstd-compressed,
with a dictionary trained on the first payloads the engine demotes. Every payload names the
dictionary it was compressed with by the dictionary's content id (0 = none, tiers/dictionaries.py),
so a process that meets an id it has not loaded yet loads it from the stores that keep them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgpack
import ormsgpack
import zstandard

from tiers.errors import PayloadUnreadableError
from tiers.record import NO_EMBEDDINGS, Embeddings, MemoryRecord, parse_seen

NO_DICTIONARY = 0
RAW = -1  # payload stored as is: compressing it would not have made it smaller


def _to_plain(obj: Any) -> Any:
    """msgpack fallback for numpy values, the one foreign type simulations store all the time."""
    module = type(obj).__module__
    if module == "numpy":
        if hasattr(obj, "tolist"):
            return obj.tolist()
    raise TypeError(f"cannot serialize a value of type {type(obj).__module__}.{type(obj).__qualname__}")


# Types ormsgpack would write in its own way (datetimes and UUIDs as strings, dataclasses as
# maps, enums as their values) where msgpack refuses them: handed to the msgpack path instead.
_ORMSGPACK_OPTIONS = (ormsgpack.OPT_PASSTHROUGH_DATETIME | ormsgpack.OPT_PASSTHROUGH_UUID
                      | ormsgpack.OPT_PASSTHROUGH_DATACLASS | ormsgpack.OPT_PASSTHROUGH_ENUM)


def pack_contents(data: Any) -> bytes:
    """Serialize contents; raises TypeError or ValueError naming what cannot be stored.

    msgpack decides what can be stored and how. ormsgpack writes the same bytes 3x faster for
    what it takes (str keys, plain values: every store pays this), so it goes first; anything it
    refuses (other keys, deep nesting, the types above) goes through msgpack, and is refused if
    it would not read back."""
    try:
        return ormsgpack.packb(data, default=_to_plain, option=_ORMSGPACK_OPTIONS)
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        blob = msgpack.packb(data, use_bin_type=True, default=_to_plain)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"contents cannot be serialized: {exc}") from exc
    try:  # keys msgpack writes but cannot read back (a tuple becomes an unhashable list)
        msgpack.unpackb(blob, strict_map_key=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"contents cannot be serialized so they read back: {exc}") from exc
    return blob


class PayloadCodec:
    """zstd compression with trained dictionaries, shared by IM and LTM.

    ``load_dictionary(dict_id) -> bytes`` and ``save_dictionary(bytes) -> dict_id`` connect it to
    the store that keeps dictionaries (the LTM tier), so the dictionary outlives Redis.

    Thread-safe: zstd (de)compressor objects must not be shared between threads, so each thread
    builds its own from the dictionaries' bytes; choosing and training the dictionary is locked.
    """

    def __init__(
        self,
        level: int = 3,
        dictionary_size: int = 32768,
        dictionary_samples: int = 500,
        load_dictionary: Callable[[int], bytes | None] | None = None,
        save_dictionary: Callable[[bytes], int] | None = None,
        latest_dictionary: Callable[[], tuple[int, bytes] | None] | None = None,
    ):
        self.level = level
        self.dictionary_size = dictionary_size
        self.dictionary_samples = dictionary_samples
        self._load = load_dictionary
        self._save = save_dictionary
        self._latest = latest_dictionary
        self._dictionaries: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self.current = NO_DICTIONARY
        self._looked_up_latest = False
        self._samples: list[bytes] = []  # gathered across batches until there are enough to train

    def _tools(self) -> tuple[dict[int, Any], dict[int, Any]]:
        """This thread's compressors and decompressors by dictionary id."""
        tools = getattr(self._local, "tools", None)
        if tools is None:
            tools = self._local.tools = (
                {NO_DICTIONARY: zstandard.ZstdCompressor(level=self.level)},
                {NO_DICTIONARY: zstandard.ZstdDecompressor()},
            )
        return tools

    def _dictionary(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        data = self._dictionaries.get(dict_id)
        if data is None:
            data = self._load(dict_id) if self._load else None
            if data is None:
                raise PayloadUnreadableError(
                    f"a payload needs zstd dictionary {dict_id}, which neither Redis nor LTM holds "
                    "(one of them lost its data, or another deployment wrote the payload)")
            self._dictionaries[dict_id] = data
        return zstandard.ZstdCompressionDict(data)

    def _adopt_latest(self) -> None:
        if self._looked_up_latest or self._latest is None:
            return
        with self._lock:
            if self._looked_up_latest:
                return
            latest = self._latest()
            if latest is not None:
                dict_id, data = latest
                self._dictionaries[dict_id] = data
                self.current = dict_id
            self._looked_up_latest = True

    def prepare(self, samples: Iterable[bytes]) -> None:
        """Make sure a dictionary is in use, training one once enough samples have been seen."""
        self._adopt_latest()
        if self.current != NO_DICTIONARY or self._save is None:
            return
        with self._lock:
            if self.current != NO_DICTIONARY:
                return
            self._samples.extend(samples)
            if len(self._samples) < self.dictionary_samples:
                return
            samples, self._samples = self._samples[-4 * self.dictionary_samples :], []
            try:
                trained = zstandard.train_dictionary(self.dictionary_size, list[Any](samples), level=self.level)
            except zstandard.ZstdError:
                return  # too little variety to train on; stay dictionary-less and gather again
            data = trained.as_bytes()
            dict_id = self._save(data)
            self._dictionaries[dict_id] = data
            self.current = dict_id

    def compress(self, blob: bytes) -> tuple[int, bytes]:
        """(dictionary id, payload); RAW and the blob itself when compression would not shrink it."""
        self._adopt_latest()
        dict_id = self.current
        compressors, _ = self._tools()
        compressor = compressors.get(dict_id)
        if compressor is None:
            # the dictionary id is kept beside each payload, so frames need not repeat it
            compressor = compressors[dict_id] = zstandard.ZstdCompressor(
                level=self.level, dict_data=self._dictionary(dict_id), write_dict_id=False
            )
        packed = compressor.compress(blob)
        return (dict_id, packed) if len(packed) < len(blob) else (RAW, blob)

    def decompress(self, dict_id: int, payload: bytes) -> bytes:
        if dict_id == RAW:
            return payload
        _, decompressors = self._tools()
        decompressor = decompressors.get(dict_id)
        if decompressor is None:
            decompressor = decompressors[dict_id] = zstandard.ZstdDecompressor(dict_data=self._dictionary(dict_id))
        try:
            return decompressor.decompress(payload)
        except zstandard.ZstdError as exc:
            raise PayloadUnreadableError(f"a payload compressed with dictionary {dict_id} is damaged: {exc}") from exc


# Redis record layout: msgpack array
#   [step, memory_type, timestamp, importance, dict_id or RAW, payload, packed embeddings, position]
# Importance is also the score in the tier's importance index (for ordering); the copy here saves
# reads a second lookup, and set_importance rewrites both.


def encode_record(record: MemoryRecord, codec: PayloadCodec | None) -> bytes:
    """Records without a codec (STM) keep raw contents; with one (IM) they are compressed."""
    if codec is None:
        dict_id, payload = RAW, record.contents_blob
    else:
        dict_id, payload = codec.compress(record.contents_blob)
    return ormsgpack.packb(  # the bytes msgpack writes (ints, floats, str, bin), faster
        [record.step_number, record.memory_type, record.timestamp, record.importance_score, dict_id, payload,
         record.embeddings.pack(), record.position]
    )


def decode_record(
    agent_id: str,
    memory_id: str,
    blob: bytes,
    tier: str,
    codec: PayloadCodec | None,
    retrieval_count: int = 0,
    seen: bytes | None = None,
) -> MemoryRecord:
    """Build the record from a Redis blob plus its access statistics
    (``seen`` is the ``"<time>|<step>"`` value of the agent's seen hash)."""
    return decode_records(agent_id, [memory_id], [blob], tier, codec, {0: (retrieval_count, seen)})[0]


def decode_records(
    agent_id: str,
    memory_ids: Sequence[bytes | str],
    blobs: Sequence[bytes],
    tier: str,
    codec: PayloadCodec | None,
    access: Mapping[int, tuple[int, bytes | None]],
    keep_payload: bool = False,
) -> list[MemoryRecord]:
    """Records from Redis blobs; ``access`` maps a position to (retrieval count, seen) for the
    memories ever read (``seen`` is the ``"<time>|<step>"`` value of the agent's seen hash).
    ``keep_payload``: compressed records also carry their payload as stored (a move to LTM).

    One loop for all rows, since every row of every Redis answer passes here: the outer array is
    read with ormsgpack (faster than msgpack at building objects; it holds no map to trip on)."""
    compression = 0 if codec is None else 1
    records = []
    for position, (memory_id, blob) in enumerate(zip(memory_ids, blobs)):
        step, memory_type, timestamp, importance, dict_id, payload, vectors, place = ormsgpack.unpackb(blob)
        stored = None
        if dict_id != RAW:
            if codec is None:
                raise ValueError("compressed record in a tier without a codec")
            if keep_payload:
                stored = (dict_id, payload)
            payload = codec.decompress(dict_id, payload)
        count, last_time, last_step = 0, None, None
        stats = access.get(position) if access else None
        if stats is not None:
            count, seen = stats
            if seen:
                last_time, last_step = parse_seen(seen)
        records.append(MemoryRecord(  # positional: cheaper than keywords, and this runs per row
            memory_id if isinstance(memory_id, str) else memory_id.decode(), agent_id, step, memory_type, timestamp,
            importance, payload, NO_EMBEDDINGS if vectors is None else Embeddings.unpack(vectors), count, last_time,
            last_step, tier, compression, None if place is None else tuple(place), stored,
        ))
    return records


def decode_derived(blob: bytes, codec: PayloadCodec | None) -> tuple[int, str, float, Embeddings,
                                                                     tuple[float, ...] | None, bytes]:
    """What the in-process indices need from a Redis record: (step, memory_type, importance,
    embeddings, position, contents as msgpack bytes; the attribute index reads them)."""
    step, memory_type, _, importance, dict_id, payload, vectors, position = ormsgpack.unpackb(blob)
    if dict_id != RAW:
        if codec is None:
            raise ValueError("compressed record in a tier without a codec")
        payload = codec.decompress(dict_id, payload)
    return (step, memory_type, importance, NO_EMBEDDINGS if vectors is None else Embeddings.unpack(vectors),
            None if position is None else tuple(position), payload)


def with_embeddings(blob: bytes, embeddings: Embeddings) -> bytes:
    """The same Redis record with other vectors (payload bytes untouched)."""
    fields = msgpack.unpackb(blob, raw=False)
    fields[6] = embeddings.pack()
    return msgpack.packb(fields, use_bin_type=True)


def payload_sizes(blob: bytes, codec: PayloadCodec | None) -> tuple[int, int]:
    """(stored, raw) size of the contents payload inside a Redis record."""
    _, _, _, _, dict_id, payload, _, _ = msgpack.unpackb(blob, raw=False)
    if codec is None:
        return len(payload), len(payload)
    return len(payload), len(codec.decompress(dict_id, payload))


def with_importance(blob: bytes, importance: float) -> bytes:
    """The same Redis record with a new importance (payload bytes untouched)."""
    fields = msgpack.unpackb(blob, raw=False)
    fields[3] = importance
    return msgpack.packb(fields, use_bin_type=True)
