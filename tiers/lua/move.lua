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
-- the ids by type, from the type sections that follow n and the four 2n-long sections
local n = tonumber(ARGV[2])
local first = 3 + 8 * n
local ids, by_type = {}, {}
local pos = first + k
for t = 1, k do
  by_type[t] = {}
  for _ = 1, tonumber(ARGV[first + t - 1]) do
    ids[#ids + 1] = ARGV[pos + 1]  -- (step, id) pairs
    by_type[t][#by_type[t] + 1] = ARGV[pos + 1]
    pos = pos + 2
  end
end
local removed = delete_records(src, src_types, ids, by_type)
bump(KEYS[5])
return removed
