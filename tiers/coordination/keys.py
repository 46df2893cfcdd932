"""The coordination layer's Redis key schema: the only module that builds its key names.

Every key lives under ``<prefix>:team:`` and carries a hash tag, so each multi-key script or
MULTI block touches one Redis Cluster slot. Names inside keys are validated
(letters, digits, ``_ . : @ / + = -``; signal types without ``:``), so no two names share a key.

    per agent                      {a:<agent>}
    <p>:team:{a:<agent>}:wm:<key>              string  msgpack value; PX = the stash TTL
    <p>:team:{a:<agent>}:collab                zset    session id -> unix ms it was persisted (newest 100 kept)
    <p>:team:{a:<agent>}:collab:<session>      string  msgpack collaboration state

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

    signals                        {signals}
    <p>:team:{signals}:in:<agent>:<type>       stream  signals of one type sent to one agent
    <p>:team:{signals}:all:<type>              stream  broadcasts of one type
    <p>:team:{signals}:types:<agent>           set     types with a stream in the agent's inbox
    <p>:team:{signals}:types                   set     types with a broadcast stream
    <p>:team:{signals}:bell:<agent>            stream  MAXLEN 1: rung by every signal to the agent (blocking reads)
    <p>:team:{signals}:bell                    stream  MAXLEN 1: rung by every broadcast
    <p>:team:{signals}:cursor:<agent>          hash    stream key -> last entry id delivered to the agent
    <p>:team:{signals}:seq                     string  counter stamped on every signal (order across streams)
    Streams are trimmed to the coordination TTL (XADD MINID) and every key expires with it.
    The embedded engine keeps its signals in the process instead (tiers/coordination/local_signals.py).

    team sessions                  {s:<session>}
    <p>:team:{s:<session>}:info                hash    session_id, purpose, created_at
    <p>:team:{s:<session>}:participants        hash    agent id -> unix time joined
    <p>:team:{s:<session>}:shared              hash    key -> msgpack value
    All three expire together, SESSION TTL after the last activity.

    patterns                       {patterns}
    <p>:team:{patterns}:staged                 zset    staged pattern id -> unix ms it was staged
    <p>:team:{patterns}:staged:<id>            string  msgpack StagedPattern; PX = STAGED_PATTERNS TTL
    <p>:team:{patterns}:decision:<id>          string  token of the validator deciding it (set PX only when absent)
    <p>:team:{patterns}:promoted:<id>          string  "1": in the library, so it is never staged again

    conflicts                      {conflicts}
    <p>:team:{conflicts}:c:<id>                string  msgpack ConflictContext; PX = CONFLICT_CONTEXT TTL

    request slots, beside the keys of {a:<agent>}, {t:<team>}, {signals} and {patterns}
    <p>:team:{<tag>}:once:<proc>:<thread>      string  the last reply of a call that takes effect once, per
                                                       calling thread (tiers/scripts.py); PX 60 s; Redis only

Never ``KEYS``; nothing here is found by ``SCAN`` except the embedded store's restore.
"""

from __future__ import annotations

import re

from tiers.errors import InvalidInputError
from tiers.keys import validate_prefix

SIGNAL_TYPE_PATTERN = re.compile(r"[A-Za-z0-9_.@/+=-]{1,64}")

# key families the embedded store keeps durable (tiers/coordination/durable.py)
DURABLE_TAGS = ("{a:", "{s:", "{patterns}", "{conflicts}")


def signal_type(value: object) -> str:
    if not isinstance(value, str) or not SIGNAL_TYPE_PATTERN.fullmatch(value):
        raise InvalidInputError(
            f"signal_type must be 1-64 of letters, digits and _ . @ / + = - (no ':'), got {value!r}"
        )
    return value


class TeamKeys:
    def __init__(self, prefix: str = "tiermem"):
        self.prefix = validate_prefix(prefix)
        self.root = f"{self.prefix}:team:"

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

    # -- signals -----------------------------------------------------------------------------
    def inbox(self, agent: str, kind: str) -> str:
        return f"{self.root}{{signals}}:in:{agent}:{kind}"

    def broadcast(self, kind: str) -> str:
        return f"{self.root}{{signals}}:all:{kind}"

    def inbox_types(self, agent: str) -> str:
        return f"{self.root}{{signals}}:types:{agent}"

    def broadcast_types(self) -> str:
        return f"{self.root}{{signals}}:types"

    def bell(self, agent: str) -> str:
        return f"{self.root}{{signals}}:bell:{agent}"

    def broadcast_bell(self) -> str:
        return f"{self.root}{{signals}}:bell"

    def signal_counter(self) -> str:
        return f"{self.root}{{signals}}:seq"

    def cursor(self, agent: str) -> str:
        return f"{self.root}{{signals}}:cursor:{agent}"

    # -- sessions ----------------------------------------------------------------------------
    def session(self, session: str) -> tuple[str, str, str]:
        """(info, participants, shared) of one team session."""
        root = f"{self.root}{{s:{session}}}:"
        return root + "info", root + "participants", root + "shared"

    # -- patterns ----------------------------------------------------------------------------
    def staged_index(self) -> str:
        return f"{self.root}{{patterns}}:staged"

    def staged(self, pattern_id: str) -> str:
        return f"{self.root}{{patterns}}:staged:{pattern_id}"

    def decision(self, pattern_id: str) -> str:
        return f"{self.root}{{patterns}}:decision:{pattern_id}"

    def promoted(self, pattern_id: str) -> str:
        return f"{self.root}{{patterns}}:promoted:{pattern_id}"

    # -- conflicts ---------------------------------------------------------------------------
    def conflict(self, conflict_id: str) -> str:
        return f"{self.root}{{conflicts}}:c:{conflict_id}"

    def durable_patterns(self) -> list[str]:
        """SCAN patterns matching every key the embedded store keeps durable."""
        return [f"{self.root}{tag}*" for tag in DURABLE_TAGS]


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
