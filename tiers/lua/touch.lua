-- touch.lua: count focused reads of memories held by the LTM tier.
-- KEYS: ltm reads hash, seen, meta
-- ARGV: now, memory_id ...
-- Returns the pending (not yet flushed to SQL) read count of each id, in order. Moves the
-- agent's version: queries report the counts.
local newest = redis.call('HGET', KEYS[3], 'newest') or ''
local counts = {}
for i = 2, #ARGV do
  counts[#counts + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[1] .. '|' .. newest)
end
bump(KEYS[3])
return counts
