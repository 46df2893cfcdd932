"""Typed configuration: one value class per tier plus the engine-wide settings.

Every option has a unit in its comment. Unknown options are an error, never ignored: a typo in a
capacity or TTL would otherwise silently change what the engine keeps. So is a value out of range:
counts are ints up to 2**53 and durations seconds up to 10**12 (validation.MAX_COUNT and
MAX_SECONDS, what Redis, SQL and Lua all take), each raising MemoryConfigException.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, cast

from memory import validation
from tiers.cluster import parse_nodes
from tiers.errors import MemoryConfigException
from tiers.keys import CHANGE_LOG_IDS, validate_prefix
from tiers.ltm_schema import DEFAULT_PARTITIONS, MAX_PARTITIONS

MAX_VECTOR_DIM = 65536  # every memory carries a vector of this many floats
MAX_DICTIONARY_BYTES = 1 << 24  # a trained zstd dictionary: training allocates its size up front
MAX_DICTIONARY_SAMPLES = 100_000  # payloads held in memory until a dictionary is trained
_MAX_TEXT = 4096  # characters of a URL, host, password or path


class _Options:
    """Keyword-only construction that names unknown options, then validates."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def __init__(self, **options: Any):
        known = [f.name for f in fields(self)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise MemoryConfigException(
                f"unknown {type(self).__name__} option(s): {', '.join(unknown)}; "
                f"known options are: {', '.join(known)}"
            )
        for f in fields(self):
            if f.name in options:
                value = options[f.name]
            elif f.default is not MISSING:
                value = f.default
            else:
                value = cast(Callable[[], Any], f.default_factory)()
            setattr(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Subclasses check ranges here."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _name(owner: object, name: str) -> str:
    return f"{type(owner).__name__}.{name}"


def _positive_int(owner: object, name: str, allow_none: bool = False, maximum: int = validation.MAX_COUNT) -> None:
    value = getattr(owner, name)
    if value is None and allow_none:
        return
    validation.count(value, _name(owner, name), minimum=1, maximum=maximum, error=MemoryConfigException)


def _positive_number(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not validation.is_number(value) or value <= 0:
        raise MemoryConfigException(f"{_name(owner, name)} must be a positive number, got {validation.shown(value)}")


def _seconds(owner: object, name: str) -> None:
    validation.seconds(getattr(owner, name), _name(owner, name), error=MemoryConfigException)


def _fraction(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if not validation.is_number(value) or not 0 < value <= 1:
        raise MemoryConfigException(f"{_name(owner, name)} must be in (0, 1], got {validation.shown(value)}")


def _flag(owner: object, name: str) -> None:
    if not isinstance(getattr(owner, name), bool):
        raise MemoryConfigException(f"{_name(owner, name)} must be a bool")


def _optional_text(owner: object, name: str) -> None:
    value = getattr(owner, name)
    if value is not None:
        validation.text(value, _name(owner, name), _MAX_TEXT, error=MemoryConfigException)


def _path(owner: object, name: str, allow_none: bool = False) -> None:
    """A file system path: a non-empty str or os.PathLike naming one."""
    value = getattr(owner, name)
    if value is None and allow_none:
        return
    path = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(path, str) or not path:
        raise MemoryConfigException(f"{_name(owner, name)} must be a non-empty path (a str), got {validation.shown(value)}")
    validation.text(path, _name(owner, name), _MAX_TEXT, error=MemoryConfigException)


@dataclass(init=False)
class RedisSTMConfig(_Options):
    """Short-term tier: full-resolution memories in Redis.

    host/port/db/password/url name the Redis server explicitly; left unset, the connection is
    resolved from ``REDIS_URL``, then localhost:6379, then the embedded engine.
    """

    host: str | None = None
    port: int | None = None
    db: int = 0
    password: str | None = None
    url: str | None = None
    memory_limit: int = 1000  # memories per agent before maintenance demotes to IM
    ttl: float = 3600.0  # seconds a memory may stay in STM before it is demoted
    low_watermark: float = 1.0  # over the limit, demote down to memory_limit * low_watermark

    def _validate(self) -> None:
        _positive_int(self, "memory_limit")
        _seconds(self, "ttl")
        _fraction(self, "low_watermark")
        _positive_int(self, "port", allow_none=True, maximum=65535)
        validation.count(self.db, "RedisSTMConfig.db", error=MemoryConfigException)
        for name in ("host", "password", "url"):
            _optional_text(self, name)
        if self.url is not None and (self.host is not None or self.port is not None):
            raise MemoryConfigException("RedisSTMConfig: give either url or host/port, not both")

    @property
    def explicit_connection(self) -> bool:
        return self.url is not None or self.host is not None or self.port is not None

    def connection_url(self) -> str | None:
        """The Redis URL these options name, or None when they leave it to auto-detection."""
        if not self.explicit_connection:
            return None
        if self.url is not None:
            return self.url
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host or '127.0.0.1'}:{self.port or 6379}/{self.db}"


@dataclass(init=False)
class RedisIMConfig(_Options):
    """Intermediate tier: zstd-compressed memories in the same Redis as STM."""

    memory_limit: int = 10000  # memories per agent before maintenance demotes to LTM
    ttl: float = 7 * 24 * 3600.0  # seconds a memory may stay in IM before it is demoted
    low_watermark: float = 0.95  # over the limit, demote down to memory_limit * low_watermark
    compression_level: int = 3  # zstd level for IM and LTM payloads

    def _validate(self) -> None:
        _positive_int(self, "memory_limit")
        _seconds(self, "ttl")
        _fraction(self, "low_watermark")
        _positive_int(self, "compression_level", maximum=22)


@dataclass(init=False)
class LTMConfig(_Options):
    """Long-term tier: any SQLAlchemy URL; a SQLite file in the data directory by default."""

    url: str | None = None  # e.g. "postgresql+psycopg://localhost/test"; None = SQLite file
    db_path: str | None = None  # SQLite file; None = <data_dir>/ltm.sqlite
    promote_threshold: int = 3  # reads since a memory arrived in LTM that bring it back to IM
    batch_size: int = 2000  # memories per move batch
    dictionary_size: int = 32768  # bytes of the trained zstd dictionary (32 KiB: ~3% smaller payloads than 16)
    dictionary_samples: int = 500  # payloads needed before a dictionary is trained
    # PostgreSQL: hash partitions by agent of a new LTM table (1: one plain table); a table that
    # exists keeps the layout it was made with. SQLite ignores it (docs/scale.md#postgresql)
    partitions: int = DEFAULT_PARTITIONS

    def _validate(self) -> None:
        _positive_int(self, "promote_threshold")
        _positive_int(self, "batch_size")
        _positive_int(self, "partitions", maximum=MAX_PARTITIONS)
        _positive_int(self, "dictionary_size", maximum=MAX_DICTIONARY_BYTES)
        _positive_int(self, "dictionary_samples", maximum=MAX_DICTIONARY_SAMPLES)
        _optional_text(self, "url")
        _path(self, "db_path", allow_none=True)
        if self.url is not None and self.db_path is not None:
            raise MemoryConfigException("LTMConfig: give either url or db_path, not both")


TEXT_EMBEDDING_MODES = ("off", "on_query", "background")
MAINTENANCE_MODES = ("inline", "background")


@dataclass(init=False)
class SearchConfig(_Options):
    """Similarity, text and spatial search (indices/ and embeddings/)."""

    vector_dim: int = 128  # size of state vectors; a vector passed to a store must have it too
    state_vectors: bool = False  # also keep the state encoder's vector of every stored dict (search_by_embedding
    #                               in its space); similar states compare contents and need none
    text_embedding: str = "on_query"  # "off"; "on_query": a content query embeds what is pending;
    #                                   "background": also a thread that catches up after stores
    text_model: Any = None  # None = all-MiniLM-L6-v2 (offline); a model name/path or a callable
    position_key: str = "position"  # contents key of [x, y] / [x, y, z]; also <key>_x/_y/_z
    cell_size: float = 10.0  # spatial grid cell edge, in position units: about your usual query radius
    exact_limit: int = 5000  # rows searched exactly; above, a FAISS HNSW graph with exact re-ranking
    index_agents: int = 1024  # agents whose indices one process keeps in memory
    index_memory_mb: int = 512  # MiB those indices may hold in all; least recently used agents leave
    attribute_paths: Any = None  # contents paths the attribute index keeps, with what lies under
    #                              them (None: every leaf; []: none, attribute filters then read the
    #                              memories the other conditions leave)

    def _validate(self) -> None:
        for name in ("exact_limit", "index_agents", "index_memory_mb"):
            _positive_int(self, name)
        _positive_int(self, "vector_dim", maximum=MAX_VECTOR_DIM)
        _positive_number(self, "cell_size")
        if self.vector_dim < 8:
            raise MemoryConfigException(f"SearchConfig.vector_dim must be at least 8, got {self.vector_dim}")
        if not isinstance(self.text_embedding, str) or self.text_embedding not in TEXT_EMBEDDING_MODES:
            raise MemoryConfigException(
                f"SearchConfig.text_embedding must be one of {TEXT_EMBEDDING_MODES}, "
                f"got {validation.shown(self.text_embedding)}")
        model = self.text_model
        if model is not None and not isinstance(model, (str, os.PathLike)) and not callable(model):
            raise MemoryConfigException(
                "SearchConfig.text_model must be None, a model name or path, a SentenceTransformer or a callable "
                f"list[str] -> array (n, d); got {validation.shown(model)}")
        _flag(self, "state_vectors")
        paths = self.attribute_paths
        if paths is not None:
            if isinstance(paths, str) or not isinstance(paths, (list, tuple)) or not all(
                    isinstance(p, str) and p and all(p.split(".")) for p in paths):
                raise MemoryConfigException(
                    "SearchConfig.attribute_paths must be None or a list of dot paths like 'inventory.wood', "
                    f"got {validation.shown(paths)}")
            self.attribute_paths = tuple(paths)
        if not isinstance(self.position_key, str) or not self.position_key:
            raise MemoryConfigException("SearchConfig.position_key must be a non-empty str")


def _section(value: Any, cls: type) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        odd = [key for key in value if not isinstance(key, str)]
        if odd:
            raise MemoryConfigException(f"{cls.__name__} options are named by str, got {validation.key_names(odd)}")
        return cls(**dict(value))
    raise MemoryConfigException(f"expected {cls.__name__} or a dict of its options, got {type(value).__name__}")


@dataclass(init=False)
class MemoryConfig(_Options):
    """Engine-wide settings and the three tier sections (objects or dicts)."""

    cleanup_interval: int = 100  # insertions between automatic maintenance runs
    maintenance_mode: str = "inline"  # "inline": the store that makes it due runs it; "background": a
    #                                   thread of the engine does, and a store waits only for an agent
    #                                   a whole run behind (memory/_engine/scheduling.py)
    memory_priority_decay: float = 0.95  # importance factor per `decay_steps` steps of age
    decay_steps: int = 100  # steps over which importance decays by one factor
    key_prefix: str = "tiermem"  # first part of every Redis key
    redis_url: str | None = None  # explicit Redis; "" forces the embedded engine; redis+cluster://h:p,h:p a cluster
    cluster_nodes: list[str] | None = None  # seed nodes "host:port" of a Redis Cluster (instead of redis_url)
    wait_replicas: int = 0  # replicas that must hold a write before it is acknowledged (Redis WAIT); 0: do not wait
    redis_timeout: float = 10.0  # seconds to wait for a reply from a Redis the engine connects to itself;
    #                              a reply that never comes counts as lost (the call is sent again, once)
    data_dir: str = ".tiermem"  # SQLite LTM file and the embedded engine's snapshot
    cache_size: int = 1024  # query results kept by the TTL-LRU cache
    cache_ttl: float = 60.0  # seconds a cached query result stays valid
    degrade_reads: bool = False  # answer reads from the tiers that still respond, flagged
    maintenance_lock_timeout: float = 60.0  # seconds one process may hold an agent's maintenance
    maintenance_workers: int = 2  # threads maintaining different agents at once (embedded: 1)
    max_payload_bytes: int = 1 << 20  # largest serialized memory accepted
    change_log_limit: int = CHANGE_LOG_IDS  # memory ids each agent's change log keeps (~40 bytes each in Redis);
    #                               a process whose indices fell further behind rebuilds them
    stm_config: RedisSTMConfig = field(default_factory=RedisSTMConfig)
    im_config: RedisIMConfig = field(default_factory=RedisIMConfig)
    ltm_config: LTMConfig = field(default_factory=LTMConfig)
    search_config: SearchConfig = field(default_factory=SearchConfig)

    def _validate(self) -> None:
        self.search_config = _section(self.search_config, SearchConfig)
        self.stm_config = _section(self.stm_config, RedisSTMConfig)
        self.im_config = _section(self.im_config, RedisIMConfig)
        self.ltm_config = _section(self.ltm_config, LTMConfig)
        for name in ("cleanup_interval", "decay_steps", "cache_size", "max_payload_bytes", "maintenance_workers",
                     "change_log_limit"):
            _positive_int(self, name)
        for name in ("cache_ttl", "maintenance_lock_timeout", "redis_timeout"):
            _seconds(self, name)
        _fraction(self, "memory_priority_decay")
        if not isinstance(self.maintenance_mode, str) or self.maintenance_mode not in MAINTENANCE_MODES:
            raise MemoryConfigException(f"maintenance_mode must be one of {MAINTENANCE_MODES}, "
                                        f"got {validation.shown(self.maintenance_mode)}")
        try:
            validate_prefix(self.key_prefix)
        except ValueError as exc:
            raise MemoryConfigException(str(exc)) from exc
        _optional_text(self, "redis_url")
        if self.cluster_nodes is not None:
            if isinstance(self.cluster_nodes, str) or not isinstance(self.cluster_nodes, (list, tuple)):
                raise MemoryConfigException(f"cluster_nodes must be a list of 'host:port', got "
                                            f"{validation.shown(self.cluster_nodes)}")
            for node in self.cluster_nodes:
                validation.text(node, "cluster_nodes entry", _MAX_TEXT, error=MemoryConfigException, empty=False)
            parse_nodes(self.cluster_nodes)
            if self.redis_url is not None or self.stm_config.explicit_connection:
                raise MemoryConfigException("give the Redis server either as cluster_nodes or as a URL, not both")
        validation.count(self.wait_replicas, "wait_replicas", minimum=0, maximum=64, error=MemoryConfigException)
        _path(self, "data_dir")
        _flag(self, "degrade_reads")
        if self.redis_url is not None and self.stm_config.explicit_connection:
            raise MemoryConfigException("give the Redis server either as redis_url or in stm_config, not both")

    @property
    def retention_rate(self) -> float:
        """How fast retention falls per step, as a logarithm: -ln(decay) / decay_steps (the slope of
        the tiers' retention keys, tiers/lua/lib.lua)."""
        return -math.log(self.memory_priority_decay) / self.decay_steps

    def redis_url_option(self) -> str | None:
        """The explicit Redis URL of this config ("" = embedded), or None to auto-detect."""
        if self.cluster_nodes is not None:
            return "redis+cluster://" + ",".join(self.cluster_nodes)
        return self.redis_url if self.redis_url is not None else self.stm_config.connection_url()

    @classmethod
    def from_file(cls, path: str | Path) -> MemoryConfig:
        """Read a TOML file: top-level engine options plus [stm], [im], [ltm] and [search] tables."""
        if not isinstance(path, (str, os.PathLike)):  # an int would be read as an open file descriptor
            raise MemoryConfigException(f"a config file path must be a str or a Path, got {validation.shown(path)}")
        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except (OSError, ValueError) as exc:  # ValueError: not TOML, not UTF-8, a NUL or surrogate in the path
            raise MemoryConfigException(f"cannot read config file {validation.shown(path)}: {exc}") from exc
        sections = {"stm": "stm_config", "im": "im_config", "ltm": "ltm_config", "search": "search_config"}
        options = {}
        for key, value in raw.items():
            options[sections.get(key, key)] = value
        return cls(**options)
