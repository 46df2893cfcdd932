-- tier_stats.lua: size and importance summary of one agent's tier (admin/statistics path, O(n)).
-- KEYS: data, importance, type key 1 .. type key k
-- ARGV: (none)
-- Returns count, stored bytes, importance min, max, sum (as strings), then k type counts.
local bytes = 0
for _, blob in ipairs(redis.call('HVALS', KEYS[1])) do bytes = bytes + #blob end
local scores = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local lo, hi, sum = nil, nil, 0
for i = 2, #scores, 2 do
  local s = tonumber(scores[i])
  sum = sum + s
  if lo == nil or s < lo then lo = s end
  if hi == nil or s > hi then hi = s end
end
local out = {redis.call('HLEN', KEYS[1]), bytes, tostring(lo or ''), tostring(hi or ''), string.format('%.17g', sum)}
for i = 3, #KEYS do out[#out + 1] = redis.call('ZCARD', KEYS[i]) end
return out
