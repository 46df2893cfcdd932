-- victims.lua: what maintenance may demote from one tier, read from its indices (never a scan).
-- KEYS: since, retention, step
-- ARGV: cutoff (a since score: memories that entered the tier before it expired), limit, keep
--       (how many stay when the tier is over its limit), then the ids the agent ever read (its
--       seen hash: a read makes a memory younger than its retention key says)
-- Returns {expired ids, excess, lowest keys, read ones here}. When the alive memories number
-- more than limit, excess = alive - keep of them are to go, and the lowest keys (flat (id, key)
-- pairs) are enough of them that those with the lowest retention are among them and the read
-- ones here (flat (id, key, step) triples), whatever the reads did; otherwise excess is 0 and
-- both lists are empty.
local total = redis.call('ZCARD', KEYS[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local alive = total - #expired
if alive <= tonumber(ARGV[2]) then return {expired, 0, {}, {}} end
local read = {}
local first = 4
while first <= #ARGV do
  local last = math.min(first + CHUNK - 1, #ARGV)
  local keys = redis.call('ZMSCORE', KEYS[2], unpack(ARGV, first, last))
  local steps = redis.call('ZMSCORE', KEYS[3], unpack(ARGV, first, last))
  for i = first, last do
    if keys[i - first + 1] then
      read[#read + 1] = ARGV[i]
      read[#read + 1] = keys[i - first + 1]
      read[#read + 1] = steps[i - first + 1]
    end
  end
  first = last + 1
end
local excess = alive - tonumber(ARGV[3])
return {expired, excess, redis.call('ZRANGE', KEYS[2], 0, excess + #expired + #read / 3 - 1, 'WITHSCORES'), read}
