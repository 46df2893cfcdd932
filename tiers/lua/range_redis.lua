-- range_redis.lua: one query's read of both Redis tiers and the agent's bookkeeping, atomically.
-- KEYS: meta, reads, seen, STM index (step or importance), STM data, IM index, IM data, LTM reads
-- ARGV: as range.lua
-- Returns {version, promoting, STM answer, IM answer, ltm_lo, ltm_hi, LTM reads pending,
-- incarnation}: the version and incarnation a cached answer is checked against, the promotion
-- counter the LTM seqlock check needs, the LTM step bounds that say whether LTM must be asked
-- (answers as in read_range), and how many LTM memories have focused reads not yet flushed to
-- SQL (none: LTM rows carry their counts).
local meta, reads, seen = KEYS[1], KEYS[2], KEYS[3]
local lo, hi, offset, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reverse, wanted = ARGV[5] == '1', ARGV[6]
local bookkeeping = redis.call('HMGET', meta, 'version', 'promoting', 'ltm_lo', 'ltm_hi', 'inc')
local stm = read_range(KEYS[4], KEYS[5], reads, seen, meta, lo, hi, offset, count, reverse, wanted)
local im = read_range(KEYS[6], KEYS[7], reads, seen, meta, lo, hi, offset, count, reverse, wanted)
return {bookkeeping[1] or false, bookkeeping[2] or false, stm, im, bookkeeping[3] or false, bookkeeping[4] or false,
        redis.call('HLEN', KEYS[8]), bookkeeping[5] or false}
