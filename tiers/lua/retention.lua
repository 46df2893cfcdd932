-- retention.lua: build an agent's retention keys (lib.lua) again, in both Redis tiers, with a
-- rate; the index is derived from the step and importance indices. Maintenance runs it when the
-- agent's rate (meta field rrate) is not its own setting: agents stored before the index
-- existed have none, and a change of the decay settings changes the rate.
-- KEYS: meta, then per tier (stm, im): step, importance, retention
-- ARGV: rate
-- Returns the number of keys written.
local rate = tonumber(ARGV[1])
local written = 0
for t = 0, 1 do
  local step_key, importance_key, retention = KEYS[2 + 3 * t], KEYS[3 + 3 * t], KEYS[4 + 3 * t]
  redis.call('DEL', retention)
  local flat = redis.call('ZRANGE', step_key, 0, -1, 'WITHSCORES')
  local first = 1
  while first <= #flat do
    local last = math.min(first + 2 * CHUNK - 1, #flat)
    local ids = {}
    for i = first, last, 2 do ids[#ids + 1] = flat[i] end
    local importances = redis.call('ZMSCORE', importance_key, unpack(ids))
    local keys = {}
    for i, id in ipairs(ids) do
      keys[#keys + 1] = retention_key(tonumber(importances[i] or '0'), tonumber(flat[first + 2 * i - 1]), rate)
      keys[#keys + 1] = id
    end
    bulk('ZADD', retention, keys)
    written = written + #ids
    first = last + 1
  end
end
redis.call('HSET', KEYS[1], 'rrate', ARGV[1])
return written
