-- move.lua: atomically store records in one Redis tier and remove them from the other.
-- Used for STM -> IM demotion: both tiers share the agent's slot, so the move is one step.
-- KEYS: dst data, dst step, dst importance, dst since, dst retention, meta, src data, src step,
--       src importance, src since, src retention, changes
-- ARGV: dst tier name, src tier name, the caller's retention rate (retention_rate, lib.lua), then
--       the record sections of put_records (lib.lua)
-- Returns the number of records removed from the source.
local rate = retention_rate(KEYS[6], ARGV[3])
put_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4], retention = KEYS[5], rate = rate},
            ARGV, 4)
local ids = put_ids(ARGV, 4)
local removed = delete_records({data = KEYS[7], step = KEYS[8], importance = KEYS[9], since = KEYS[10],
                                retention = KEYS[11]}, ids)
note_change(KEYS[12], KEYS[6], 'add', ARGV[1], ids, ARGV[2])
bump(KEYS[6])
return removed
