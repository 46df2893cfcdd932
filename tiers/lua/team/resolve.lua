-- resolve.lua: write a conflict's resolution only if nobody changed the conflict since it was
-- read, keeping its TTL (tiers/coordination/conflicts.py). A compare-and-set: sent again after it
-- ran, it finds its own resolution, writes nothing and answers 0 (the caller reads that resolution).
-- KEYS: the conflict
-- ARGV: msgpack conflict as read, msgpack resolved conflict
-- Returns 1 written, 0 the conflict changed, -1 there is no such key.
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
