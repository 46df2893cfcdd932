-- move.lua: atomically store records in one Redis tier and remove them from the other.
-- Used for STM -> IM demotion: both tiers share the agent's slot, so the move is one step.
-- KEYS: dst data, dst step, dst importance, dst since, meta, src data, src step, src importance,
--       src since, changes
-- ARGV: dst tier name, src tier name, then the record sections of put_records (lib.lua)
-- Returns the number of records removed from the source.
local n = put_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}, ARGV, 3)
local ids = put_ids(ARGV, 3)
local removed = delete_records({data = KEYS[6], step = KEYS[7], importance = KEYS[8], since = KEYS[9]}, ids)
note_change(KEYS[10], KEYS[5], 'add', ARGV[1], ids, ARGV[2])
bump(KEYS[5])
return removed
