-- changes.lua: the agent's change log since a reader's position.
-- KEYS: meta, changes
-- ARGV: position (the seq the reader has applied), most entries to return
-- Returns {seq now, the agent's version, entries after the position}. The reader missed nothing
-- when the first entry starts at its position (entry id 0-<seq> minus its n ids), or, with no
-- entries, when seq now equals its position; otherwise the log was trimmed past it or the agent
-- was cleared (clearing restarts seq at the time in milliseconds), and it rebuilds.
local seq = tonumber(redis.call('HGET', KEYS[1], 'cseq') or '0')
local entries = {}
if tonumber(ARGV[1]) < seq then
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {seq, redis.call('HGET', KEYS[1], 'version') or '0', entries}
