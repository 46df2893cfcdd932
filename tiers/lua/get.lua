-- get.lua: read records by id from one tier.
-- KEYS: data, importance, reads, seen, meta
-- ARGV: now ('' = do not count the read), memory_id ...
-- Returns flat groups of (id, blob, importance, retrieval count, last seen) for ids that exist.
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
return collect(ids, KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], {})
