-- tier_stats.lua: size and importance summary of one agent's tier (admin/statistics path, O(n)).
-- KEYS: data, importance
-- ARGV: (none)
-- Returns count, stored bytes, importance min, max, sum (as strings), then (type, count) pairs.
local bytes = 0
local types = {}
for _, blob in ipairs(redis.call('HVALS', KEYS[1])) do
  bytes = bytes + #blob
  local t = record_type(blob)
  types[t] = (types[t] or 0) + 1
end
local scores = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local lo, hi, sum = nil, nil, 0
for i = 2, #scores, 2 do
  local s = tonumber(scores[i])
  sum = sum + s
  if lo == nil or s < lo then lo = s end
  if hi == nil or s > hi then hi = s end
end
local out = {redis.call('HLEN', KEYS[1]), bytes, tostring(lo or ''), tostring(hi or ''), string.format('%.17g', sum)}
for t, n in pairs(types) do
  out[#out + 1] = t
  out[#out + 1] = n
end
return out
