-- move.lua: atomically store records in one Redis tier and remove them from the other.
-- Used for STM -> IM demotion: both tiers share the agent's slot, so the move is one step.
-- KEYS: dst data, dst step, dst importance, dst since, meta,
--       src data, src step, src importance, src since, then k type keys of dst, then k of src
-- ARGV: k, then the record sections of put_records (lib.lua)
-- Returns the number of records removed from the source.
local k = tonumber(ARGV[1])
local dst = {data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}
local src = {data = KEYS[6], step = KEYS[7], importance = KEYS[8], since = KEYS[9]}
local dst_types, src_types = {}, {}
for i = 1, k do
  dst_types[i] = KEYS[9 + i]
  src_types[i] = KEYS[9 + k + i]
end
put_records(dst, dst_types, ARGV, 2)
local n = tonumber(ARGV[2])
local ids = {}
for i = 0, n - 1 do ids[#ids + 1] = ARGV[3 + 2 * i] end  -- the ids of the (id, blob) section
local removed = delete_records(src, src_types, ids, 1, #ids)
bump(KEYS[5])
return removed
