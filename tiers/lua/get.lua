-- get.lua: read records by id from one tier.
-- KEYS: data, reads, seen, meta
-- ARGV: now ('' = do not count the read), memory_id ...
-- Returns {ids, blobs, access} for the ids that exist (see collect in lib.lua).
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
return collect(ids, KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], nil)
