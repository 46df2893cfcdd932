-- delete.lua: remove memories from one tier; optionally drop their access statistics.
-- KEYS: data, step, importance, since, meta, reads, seen
-- ARGV: drop_access ('1' or '0'), memory_id ...
-- Returns the number of records removed.
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local removed = delete_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}, ids)
if ARGV[1] == '1' and #ids > 0 then
  bulk('HDEL', KEYS[6], ids)
  bulk('HDEL', KEYS[7], ids)
end
bump(KEYS[5])
return removed
