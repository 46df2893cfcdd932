"""Where the coordination layer's bytes live: its Redis keys, Lua scripts, in-process twins, the
embedded engine's durable copy and the pattern library's SQL. memory/team/ keeps the semantics
(checks, access tiers, the public classes) and reaches Redis, SQLite and SQL only through here,
so every driver error is translated here (tiers/failures.py, tiers.ltm_schema.guarded, durable.py).

One module per idea: keys (the key schema), base (the store contracts), stores (which store each
feature gets on a connection), context (what the stores of one connection share), connection
(clients, PING, server facts), tasks / local_tasks, signals / local_signals, patterns /
local_patterns (Redis and the embedded engine's in-process twin of each), agents (heartbeats and
capabilities), working, sessions, conflicts, collaboration, durable (the embedded engine's SQLite
copy), library (the pattern library's table). The Lua is in tiers/lua/team/.
"""
