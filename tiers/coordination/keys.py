"""The coordination layer's Redis key schema: the only module that builds its key names.

Every key lives under ``<prefix>:team:`` and carries a hash tag, so each multi-key script or
MULTI block touches one Redis Cluster slot, and no feature keeps every agent's or every team's
keys in one slot: an agent's keys (working memory, collaboration state, its signal inbox) share
its tag, a team's tasks theirs, a session's, a conflict's and a pattern bucket's theirs. Names
inside keys are validated (letters, digits, ``_ . : @ / + = -``; signal types without ``:``), so
no two names share a key.

    per agent                      {a:<agent>}
    <p>:team:{a:<agent>}:wm:<key>              string  msgpack value; PX = the stash TTL
    <p>:team:{a:<agent>}:collab                zset    session id -> unix ms it was persisted (newest 100 kept)
    <p>:team:{a:<agent>}:collab:<session>      string  msgpack collaboration state
    <p>:team:{a:<agent>}:in:<type>             stream  signals of one type sent to the agent
    <p>:team:{a:<agent>}:in_types              set     types with a stream in the agent's inbox
    <p>:team:{a:<agent>}:bell                  stream  MAXLEN 1: rung by a signal of a type new to the
                                                       agent, and by broadcasts while the agent waits
    <p>:team:{a:<agent>}:cursor                hash    stream key (its own and the broadcast streams) ->
                                                       last entry id delivered to the agent

    per team (AgentCoordinator)    {t:<team>}
    <p>:team:{t:<team>}:tasks                  hash    task id -> msgpack task body (immutable)
    <p>:team:{t:<team>}:order                  hash    task id -> queue score ((1000 - priority) * 2^40 + seq)
    <p>:team:{t:<team>}:seq                    string  counter giving FIFO order within a priority
    <p>:team:{t:<team>}:types                  set     task types ever queued
    <p>:team:{t:<team>}:queue:<type>           zset    pending task ids by queue score (lowest first)
    <p>:team:{t:<team>}:leases:<type>          zset    claimed task ids by lease deadline (unix ms)
    <p>:team:{t:<team>}:leases_due:<type>      string  no lease of the type ends before this (unix ms)
    <p>:team:{t:<team>}:claims                 hash    task id -> claimer agent id (claimed tasks only)
    <p>:team:{t:<team>}:attempts               hash    task id -> times claimed
    <p>:team:{t:<team>}:results                hash    task id -> msgpack {result, agent_id, task_type, completed_at}
    <p>:team:{t:<team>}:done                   zset    completed task id -> unix ms its retention ends
    <p>:team:{t:<team>}:stats                  hash    total | agent:<id> | type:<type> -> completed count
    <p>:team:{t:<team>}:agents                 zset    agent id -> last heartbeat (unix ms)
    <p>:team:{t:<team>}:capabilities           hash    agent id -> msgpack list of capabilities
    A completed task's fields in tasks, order, attempts and results leave with its done entry once
    its retention ends (a few per claim and completion); stats keep counting it.
    The embedded engine keeps tasks (not agents) in the process, written into these keys only for
    its snapshot (tiers/coordination/local_tasks.py).

    broadcasts                     {broadcast}
    <p>:team:{broadcast}:all:<type>            stream  broadcasts of one type
    <p>:team:{broadcast}:types                 set     types with a broadcast stream
    <p>:team:{broadcast}:listeners             zset    agent id -> until when it waits for a signal (unix ms,
                                                       Redis clock): a broadcast rings these agents' bells
    A signal's entry id orders it among every stream (tiers/coordination/signals.py). Streams are
    trimmed to the coordination TTL (XADD MINID) and every signal key expires with it. The
    embedded engine keeps its signals in the process instead (tiers/coordination/local_signals.py).

    team sessions                  {s:<session>}
    <p>:team:{s:<session>}:info                hash    session_id, purpose, created_at
    <p>:team:{s:<session>}:participants        hash    agent id -> unix time joined
    <p>:team:{s:<session>}:shared              hash    key -> msgpack value
    All three expire together, SESSION TTL after the last activity.

    staged patterns, in 16 buckets {p:<bucket>}: bucket = crc32(pattern id) % 16, two hex digits
    <p>:team:{p:<bucket>}:staged               zset    the bucket's staged pattern ids -> unix ms staged
    <p>:team:{p:<bucket>}:staged:<id>          string  msgpack StagedPattern; PX = STAGED_PATTERNS TTL
    <p>:team:{p:<bucket>}:decision:<id>        string  token of the validator deciding it (set PX only when absent)
    <p>:team:{p:<bucket>}:promoted:<id>        string  "1": in the library, so it is never staged again

    conflicts                      {c:<conflict>}
    <p>:team:{c:<conflict>}:conflict           string  msgpack ConflictContext; PX = CONFLICT_CONTEXT TTL

    request slots, under the tag of a once-script call's first key ({a:..}, {t:..}, {s:..}, {p:..}, {broadcast})
    <p>:team:{<tag>}:once:<proc>:<thread>      string  the last reply of a call that takes effect once, per
                                                       calling thread (tiers/scripts.py); PX 60 s; Redis only

The keys of the earlier layout (:class:`EarlierLayout`: every signal under ``{signals}``, every
staged pattern under ``{patterns}``, every conflict under ``{conflicts}``) are read only to carry
their data over (docs/agent-teams.md, "Key layout and upgrades").

Never ``KEYS``; nothing here is found by ``SCAN`` except the embedded store's restore.
"""

from __future__ import annotations

import re
import zlib

from tiers.errors import InvalidInputError
from tiers.keys import validate_prefix

SIGNAL_TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.@/+=-]{1,64}")
PATTERN_BUCKETS = 16  # staged patterns spread over this many hash tags (fixed: a bucket is part of the key)

# key families the embedded store keeps durable (tiers/coordination/durable.py), and those of the
# earlier layout its restore drops from an older snapshot
DURABLE_TAGS = ("{a:", "{s:", "{p:", "{c:")
EARLIER_DURABLE_TAGS = ("{patterns}", "{conflicts}")


def signal_type(value: object) -> str:
    if not isinstance(value, str) or not SIGNAL_TYPE_PATTERN.fullmatch(value):
        raise InvalidInputError(
            f"signal_type must be 1-64 of letters, digits and _ . @ / + = - (no ':'), got {value!r}"
        )
    return value


def pattern_bucket(pattern_id: str) -> int:
    """The bucket of a staged pattern: the same in every process (crc32, not Python's hash)."""
    return zlib.crc32(pattern_id.encode()) % PATTERN_BUCKETS


class TeamKeys:
    def __init__(self, prefix: str = "tiermem"):
        self.prefix = validate_prefix(prefix)
        self.root = f"{self.prefix}:team:"
        self.earlier = EarlierLayout(self.root)

    # -- agents ------------------------------------------------------------------------------
    def working(self, agent: str, key: str) -> str:
        return f"{self.root}{{a:{agent}}}:wm:{key}"

    def collab_index(self, agent: str) -> str:
        return f"{self.root}{{a:{agent}}}:collab"

    def collab_state(self, agent: str, session: str) -> str:
        return f"{self.root}{{a:{agent}}}:collab:{session}"

    # -- teams -------------------------------------------------------------------------------
    def team(self, team: str) -> TeamTaskKeys:
        return TeamTaskKeys(f"{self.root}{{t:{team}}}:")

    # -- signals: an agent's inbox ----------------------------------------------------------------
    def inbox(self, agent: str, kind: str) -> str:
        return f"{self.root}{{a:{agent}}}:in:{kind}"

    def inbox_types(self, agent: str) -> str:
        return f"{self.root}{{a:{agent}}}:in_types"

    def bell(self, agent: str) -> str:
        return f"{self.root}{{a:{agent}}}:bell"

    def cursor(self, agent: str) -> str:
        return f"{self.root}{{a:{agent}}}:cursor"

    # -- signals: broadcasts -------------------------------------------------------------------
    def broadcast(self, kind: str) -> str:
        return f"{self.root}{{broadcast}}:all:{kind}"

    def broadcast_prefix(self) -> str:
        """What every broadcast stream's key starts with."""
        return f"{self.root}{{broadcast}}:all:"

    def broadcast_types(self) -> str:
        return f"{self.root}{{broadcast}}:types"

    def listeners(self) -> str:
        return f"{self.root}{{broadcast}}:listeners"

    # -- sessions ----------------------------------------------------------------------------
    def session(self, session: str) -> tuple[str, str, str]:
        """(info, participants, shared) of one team session."""
        root = f"{self.root}{{s:{session}}}:"
        return root + "info", root + "participants", root + "shared"

    # -- patterns ----------------------------------------------------------------------------
    def bucket_root(self, bucket: int) -> str:
        return f"{self.root}{{p:{bucket:02x}}}:"

    def bucket_index(self, bucket: int) -> str:
        """The staged index of one bucket."""
        return self.bucket_root(bucket) + "staged"

    def staged_index(self, pattern_id: str) -> str:
        """The staged index of the pattern's bucket."""
        return self.bucket_index(pattern_bucket(pattern_id))

    def staged(self, pattern_id: str) -> str:
        return f"{self.bucket_root(pattern_bucket(pattern_id))}staged:{pattern_id}"

    def decision(self, pattern_id: str) -> str:
        return f"{self.bucket_root(pattern_bucket(pattern_id))}decision:{pattern_id}"

    def promoted(self, pattern_id: str) -> str:
        return f"{self.bucket_root(pattern_bucket(pattern_id))}promoted:{pattern_id}"

    # -- conflicts ---------------------------------------------------------------------------
    def conflict(self, conflict_id: str) -> str:
        return f"{self.root}{{c:{conflict_id}}}:conflict"

    def durable_patterns(self) -> list[str]:
        """SCAN patterns matching every key the embedded store keeps durable (or kept, in the
        earlier layout)."""
        return [f"{self.root}{tag}*" for tag in (*DURABLE_TAGS, *EARLIER_DURABLE_TAGS)]

    def carried_over(self, key: str) -> str | None:
        """The key that holds, in this layout, what ``key`` of the earlier layout held (a durable
        copy's row name: a zset member is ``<zset key>\\n<member>``); None for a key not carried
        over (signals, decision leases, the earlier layout's locks), ``key`` itself for any other."""
        earlier = self.earlier
        if key.startswith(earlier.patterns):
            rest = key[len(earlier.patterns) :]
            if rest.startswith("staged\n"):
                pattern_id = rest[len("staged\n") :]
                return f"{self.staged_index(pattern_id)}\n{pattern_id}"
            for family, build in (("staged:", self.staged), ("promoted:", self.promoted)):
                if rest.startswith(family):
                    return build(rest[len(family) :])
            return None
        if key.startswith(earlier.conflicts):
            return self.conflict(key[len(earlier.conflicts) :])
        if key.startswith(earlier.signals):
            return None
        return key


class EarlierLayout:
    """The keys of the layout before signals, staged patterns and conflicts were spread over hash
    tags (one tag each for every team and agent): read only to carry their data over."""

    def __init__(self, root: str):
        self.signals = f"{root}{{signals}}:"
        self.patterns = f"{root}{{patterns}}:"
        self.conflicts = f"{root}{{conflicts}}:c:"

    def staged_index(self) -> str:
        return self.patterns + "staged"

    def staged(self, pattern_id: str) -> str:
        return f"{self.patterns}staged:{pattern_id}"

    def decision(self, pattern_id: str) -> str:
        return f"{self.patterns}decision:{pattern_id}"

    def moving(self) -> str:
        """A lock: one process at a time carries the earlier staged patterns over."""
        return self.patterns + "moving"

    def conflict(self, conflict_id: str) -> str:
        return self.conflicts + conflict_id


class TeamTaskKeys:
    """The keys of one team's task queue (all under the team's hash tag)."""

    def __init__(self, root: str):
        self.tasks = root + "tasks"
        self.order = root + "order"
        self.seq = root + "seq"
        self.types = root + "types"
        self.claims = root + "claims"
        self.attempts = root + "attempts"
        self.results = root + "results"
        self.done = root + "done"
        self.stats = root + "stats"
        self.agents = root + "agents"
        self.capabilities = root + "capabilities"
        self.root = root

    def queue(self, task_type: str) -> str:
        return f"{self.root}queue:{task_type}"

    def leases(self, task_type: str) -> str:
        return f"{self.root}leases:{task_type}"

    def leases_due(self, task_type: str) -> str:
        return f"{self.root}leases_due:{task_type}"
