-- put.lua: store records in one tier and bump the agent's version.
-- KEYS: data, step, importance, since, meta, type key 1 .. type key k
-- ARGV: now, newest step in the batch, n, then n groups of (id, blob, step, importance, type index)
-- Returns the agent's new version.
local tier = {data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}
local type_keys = {}
for i = 6, #KEYS do type_keys[#type_keys + 1] = KEYS[i] end
put_records(tier, type_keys, ARGV[1], ARGV, 4, tonumber(ARGV[3]))
raise_newest(KEYS[5], ARGV[2])
return bump(KEYS[5])
