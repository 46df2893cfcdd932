-- put.lua: store records in one tier and bump the agent's version.
-- KEYS: data, step, importance, since, meta, then one type key per memory type (MEMORY_TYPES order)
-- ARGV: newest step in the batch, then the record sections of put_records (lib.lua)
-- Returns the agent's new version.
local tier = {data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}
local type_keys = {}
for i = 6, #KEYS do type_keys[#type_keys + 1] = KEYS[i] end
put_records(tier, type_keys, ARGV, 2)
raise_newest(KEYS[5], ARGV[1])
return bump(KEYS[5])
