-- changes.lua: the agent's change log since a reader's position.
-- KEYS: meta, changes
-- ARGV: position (the seq the reader has applied), most entries to return
-- Returns {seq now, the agent's version, entries after the position, its incarnation}. The reader
-- missed nothing when the incarnation is the one it read before and the first entry starts at
-- its position (entry id 0-<seq> minus its n ids), or, with no entries, when seq now equals its
-- position; otherwise the log was trimmed past it, the agent was cleared (clearing restarts seq at
-- the time in milliseconds) or Redis lost the agent's keys, and it rebuilds.
return changes_since(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
