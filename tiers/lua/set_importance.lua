-- set_importance.lua: change a memory's importance wherever it lives in Redis.
-- KEYS: stm importance, im importance, meta
-- ARGV: memory_id, importance
-- Returns the number of Redis tiers holding the memory (0, 1, or 2 mid-move).
local found = 0
for i = 1, 2 do
  if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
    found = found + 1
  end
end
if found > 0 then bump(KEYS[3]) end
return found
