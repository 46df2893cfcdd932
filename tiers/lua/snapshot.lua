-- snapshot.lua: every memory of one tier with its step, importance and entry time (maintenance).
-- KEYS: step, importance, since
-- ARGV: (none)
-- Returns {ids, steps, importances, sinces}, aligned, in step order (one call, one moment).
local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local ids, steps = {}, {}
for i = 1, #flat, 2 do
  ids[#ids + 1] = flat[i]
  steps[#steps + 1] = flat[i + 1]
end
local importances, sinces = {}, {}
local first = 1
while first <= #ids do
  local last = math.min(first + CHUNK - 1, #ids)
  for _, score in ipairs(redis.call('ZMSCORE', KEYS[2], unpack(ids, first, last))) do
    importances[#importances + 1] = score or '0'
  end
  for _, score in ipairs(redis.call('ZMSCORE', KEYS[3], unpack(ids, first, last))) do
    sinces[#sinces + 1] = score or '0'
  end
  first = last + 1
end
return {ids, steps, importances, sinces}
