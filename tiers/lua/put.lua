-- put.lua: store records in one tier and bump the agent's version.
-- KEYS: data, step, importance, since, meta
-- ARGV: newest step in the batch, then the record sections of put_records (lib.lua)
-- Returns the agent's new version.
put_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}, ARGV, 2)
raise_newest(KEYS[5], ARGV[1])
return bump(KEYS[5])
