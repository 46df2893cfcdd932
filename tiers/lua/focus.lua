-- focus.lua: a focused read of memories by id (get_memory): STM first, then IM for the ids STM
-- does not hold, each read counted once (reads += 1, seen = now|newest step, the version moves).
-- KEYS: meta, reads, seen, STM data, IM data
-- ARGV: now, memory_id ...
-- Returns {promoting, STM answer, IM answer} (answers as in collect, lib.lua); the promotion
-- counter is read first, for the seqlock check of a reader that goes on to LTM.
local promoting = redis.call('HGET', KEYS[1], 'promoting') or false
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
local stm = collect(ids, KEYS[4], KEYS[2], KEYS[3], KEYS[1], ARGV[1], nil)
local held = {}
for _, id in ipairs(stm[1]) do held[id] = true end
local rest = {}
for _, id in ipairs(ids) do if not held[id] then rest[#rest + 1] = id end end
local im = collect(rest, KEYS[5], KEYS[2], KEYS[3], KEYS[1], ARGV[1], nil)
return {promoting, stm, im}
