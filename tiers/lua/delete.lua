-- delete.lua: remove memories from one tier; optionally drop their access statistics.
-- KEYS: data, step, importance, since, meta, reads, seen, type key 1 .. type key k
-- ARGV: drop_access ('1' or '0'), memory_id ...
-- Returns the number of records removed.
local tier = {data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}
local type_keys = {}
for i = 8, #KEYS do type_keys[#type_keys + 1] = KEYS[i] end
local removed = delete_records(tier, type_keys, ARGV, 2, #ARGV)
if ARGV[1] == '1' and #ARGV > 1 then
  local ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
  bulk('HDEL', KEYS[6], ids)
  bulk('HDEL', KEYS[7], ids)
end
bump(KEYS[5])
return removed
