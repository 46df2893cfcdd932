-- set_importance.lua: change a memory's importance wherever it lives in Redis, if nothing moved.
-- KEYS: stm data, stm importance, im data, im importance, meta, changes, stm step, stm retention,
--       im step, im retention
-- ARGV: memory_id, importance, then per tier (stm, im): the blob read before ('' = absent),
--       the rewritten blob; last, the caller's retention rate (retention_rate, lib.lua)
-- The caller read the blobs and rewrote them; if either tier changed since (a move ran in
-- between), nothing is written and -1 is returned so the caller reads again.
-- Returns the number of Redis tiers updated.
local id = ARGV[1]
for t = 0, 1 do
  local current = redis.call('HGET', KEYS[1 + 2 * t], id) or ''
  if current ~= ARGV[3 + 2 * t] then return -1 end
end
local found = 0
local rate = retention_rate(KEYS[5], ARGV[7])
for t = 0, 1 do
  if ARGV[3 + 2 * t] ~= '' then
    redis.call('HSET', KEYS[1 + 2 * t], id, ARGV[4 + 2 * t])
    redis.call('ZADD', KEYS[2 + 2 * t], ARGV[2], id)
    local step = tonumber(redis.call('ZSCORE', KEYS[7 + 2 * t], id))
    redis.call('ZADD', KEYS[8 + 2 * t], retention_key(tonumber(ARGV[2]), step, rate), id)
    note_change(KEYS[6], KEYS[5], 'upd', t == 0 and 'stm' or 'im', {id})
    found = found + 1
  end
end
if found > 0 then bump(KEYS[5]) end
return found
