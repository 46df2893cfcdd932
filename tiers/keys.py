"""The Redis key schema: the only module that builds key names.

Every key of one agent carries the hash tag ``{agent_id}``, so one agent lives in one Redis
Cluster slot and the multi-key Lua scripts and MULTI blocks stay legal.

    <prefix>:{<agent>}:meta                  hash   the agent's bookkeeping: version (cache token),
                                                    incarnation, newest step, LTM step bounds,
                                                    promotion seqlock, change-log and LTM stamps
                                                    (the fields: tiers/bookkeeping.py)
    <prefix>:{<agent>}:<tier>:data           hash   memory_id -> msgpack record (tier = stm | im)
    <prefix>:{<agent>}:<tier>:step           zset   memory_id scored by step_number
    <prefix>:{<agent>}:<tier>:importance     zset   memory_id scored by importance_score
    <prefix>:{<agent>}:<tier>:since          zset   memory_id scored by the unix time it entered the tier,
                                                    in whole microseconds (an integer score)
    <prefix>:{<agent>}:<tier>:retention      zset   memory_id scored by its retention key (maintenance
                                                    demotes the lowest first): ln(importance) +
                                                    step x rate, -1e12 + step x rate at importance
                                                    0; rate = -ln(decay) / decay_steps, recorded in
                                                    meta field rrate (tiers/lua/lib.lua)
    <prefix>:{<agent>}:reads                 hash   memory_id -> retrieval count of STM/IM memories
    <prefix>:{<agent>}:ltm_reads             hash   memory_id -> LTM reads not yet flushed to SQL
    <prefix>:{<agent>}:seen                  hash   memory_id -> "<unix time>|<agent's newest step>" of last read
                                                    (reads, ltm_reads, seen: tiers/bookkeeping.py)
    <prefix>:{<agent>}:moves                 hash   "<from>><to>" -> msgpack list of memory_ids in flight
    <prefix>:{<agent>}:lock                  string maintenance lease token (SET NX PX) (both: tiers/moves.py)
    <prefix>:{<agent>}:once:<proc>:<thread>  string the last reply of a call that takes effect once,
                                                    per calling thread (tiers/scripts.py); PX 60 s
    <prefix>:{<agent>}:changes               stream the agent's change log, read by the in-process
                                                    indices of every process (indices/catalog.py):
                                                    entry id 0-<seq>, fields op (add | del | upd),
                                                    tier, n, ids (space-separated), from (a move:
                                                    the tier the ids left); seq counts
                                                    changed ids (meta field cseq); about
                                                    MemoryConfig.change_log_limit ids kept
    <prefix>:{<agent>}:pending               zset   memory_id -> step, STM and IM memories waiting for
                                                    their text embedding (memory/_engine/text_embedder.py;
                                                    LTM keeps its own, column text_pending)

and once per prefix, beside the agents (read when an engine starts, never on a hot path):

    <prefix>:deployment                      hash   the deployment the prefix belongs to (tiers/deployment.py)
    <prefix>:dict:<id>                       string a zstd dictionary by content id (tiers/dictionaries.py)
    <prefix>:agents:{<shard>}                set    agent ids registered before their first store, by CRC32
                                                    of the id over 16 shards (tiers/registry.py)
    <prefix>:agents:built                    string set once the registry holds every agent (else it is
                                                    rebuilt by SCAN)

Records in ``data`` never expire by Redis TTL: a memory leaves a tier only through maintenance,
which writes the destination before deleting the source (invariant 1).
"""

from __future__ import annotations

import functools
import re
from typing import Any

NAME_ALPHABET = re.compile(r"[A-Za-z0-9_.:@/+=-]+")  # safe in Redis keys, SQL and file names
AGENT_ID_LIMIT = 128
AGENT_ID_PATTERN = re.compile(rf"[A-Za-z0-9_.:@/+=-]{{1,{AGENT_ID_LIMIT}}}")
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
REDIS_TIERS = ("stm", "im")
CHANGE_LOG_IDS = 2000  # ids an agent's change log keeps unless the engine says otherwise


def validate_name(value: object, what: str = "agent_id", limit: int = AGENT_ID_LIMIT) -> str:
    """The one rule for ids that become part of keys (agents, teams, sessions, tasks, patterns,
    conversations): a non-empty str of at most ``limit`` characters from NAME_ALPHABET. Returns
    it, or raises ValueError naming what is wrong with it."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {limit}")
    if not NAME_ALPHABET.fullmatch(value):
        bad = sorted({ch for ch in value if not NAME_ALPHABET.fullmatch(ch)})
        raise ValueError(f"{what} {value!r} contains {''.join(bad)!r}; allowed are letters, digits and _ . : @ / + = -")
    return value


def validate_agent_id(agent_id: object) -> str:
    return validate_name(agent_id, "agent_id")


def validate_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(f"key_prefix must be 1-64 of letters, digits, _ . -; got {prefix!r}")
    return prefix


class KeySchema:
    """Builds every key under one prefix."""

    def __init__(self, prefix: str = "tiermem"):
        self.prefix = validate_prefix(prefix)
        # every read and write asks for an agent's tier keys: build each set once
        self.tier = functools.lru_cache(maxsize=16384)(self._tier)

    def deployment(self) -> str:
        return f"{self.prefix}:deployment"

    def dictionary(self, dict_id: int) -> str:
        return f"{self.prefix}:dict:{dict_id}"

    def registry(self, shard: int) -> str:
        return f"{self.prefix}:agents:{{{shard}}}"

    def registry_built(self) -> str:
        return f"{self.prefix}:agents:built"

    def agent_root(self, agent_id: str) -> str:
        return f"{self.prefix}:{{{agent_id}}}"

    def meta(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:meta"

    def reads(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:reads"

    def ltm_reads(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:ltm_reads"

    def seen(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:seen"

    def moves(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:moves"

    def lock(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:lock"

    def changes(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:changes"

    def pending(self, agent_id: str) -> str:
        return f"{self.agent_root(agent_id)}:pending"

    def _tier(self, agent_id: str, tier: str) -> TierKeys:
        return TierKeys(f"{self.agent_root(agent_id)}:{tier}")

    def scan_agents(self, client: Any) -> list[str]:
        """Agent ids that have a meta key, found by SCAN (admin paths only, never on a hot path)."""
        head, tail = len(self.prefix) + 2, len("}:meta")
        found = (
            (key.decode() if isinstance(key, bytes) else key)[head:-tail]
            for key in client.scan_iter(match=f"{self.prefix}:{{*}}:meta", count=1000)
        )
        return list(dict.fromkeys(found))  # SCAN may return a key twice

    def all_agent_keys(self, agent_id: str) -> list[str]:
        keys = [self.meta(agent_id), self.reads(agent_id), self.ltm_reads(agent_id), self.seen(agent_id)]
        keys += [self.moves(agent_id), self.changes(agent_id), self.pending(agent_id)]
        for tier in REDIS_TIERS:
            tk = self.tier(agent_id, tier)
            keys += tk.all()
        return keys


class TierKeys:
    """The keys of one agent in one Redis tier."""

    __slots__ = ("root", "data", "step", "importance", "since", "retention")

    def __init__(self, root: str):
        self.root = root
        self.data = f"{root}:data"
        self.step = f"{root}:step"
        self.importance = f"{root}:importance"
        self.since = f"{root}:since"
        self.retention = f"{root}:retention"

    def all(self) -> list[str]:
        return [self.data, self.step, self.importance, self.since, self.retention]
