-- delete.lua: remove memories from one tier; optionally drop their access statistics.
-- KEYS: data, step, importance, since, meta, reads, seen, then one type key per memory type
-- ARGV: drop_access ('1' or '0'), k, then either
--         k = 0:  memory_id ...                         (types unknown: clean every type index)
--         k > 0:  k counts, then that many ids per type (MEMORY_TYPES order)
-- Returns the number of records removed.
local tier = {data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}
local type_keys = {}
for i = 8, #KEYS do type_keys[#type_keys + 1] = KEYS[i] end
local k = tonumber(ARGV[2])
local ids, by_type
if k == 0 then
  ids = {}
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids, by_type = typed_ids(ARGV, 3, k)
end
local removed = delete_records(tier, type_keys, ids, by_type)
if ARGV[1] == '1' and #ids > 0 then
  bulk('HDEL', KEYS[6], ids)
  bulk('HDEL', KEYS[7], ids)
end
bump(KEYS[5])
return removed
