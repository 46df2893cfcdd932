-- read_back.lua: a write script followed, in the same call, by a read-back of the keys it touched,
-- for the embedded engine's durable copy (tiers/coordination/durable.py). The write's own KEYS
-- and ARGV shadow the globals, so it runs unchanged; with an empty write it is the read-back alone.
-- KEYS: the write's keys, then the keys to read back
-- ARGV: the write's args, then the read-back kinds ('string', 'hash', 'zset' or 'zmember:<member>'),
--       then the counts of the write's keys and args
-- Returns {the write's reply, {value, pttl, ...}} (a missing value is nil).
local nk, na = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
local reply = (function(KEYS, ARGV)
-- the write --
end)({unpack(KEYS, 1, nk)}, {unpack(ARGV, 1, na)})
local out = {}
for i = nk + 1, #KEYS do
  local key, kind, value = KEYS[i], ARGV[na + i - nk]
  if kind == 'string' then value = redis.call('GET', key)
  elseif kind == 'hash' then value = redis.call('HGETALL', key)
  elseif kind == 'zset' then value = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  else value = redis.call('ZSCORE', key, string.sub(kind, 9)) end
  out[#out + 1] = value
  out[#out + 1] = redis.call('PTTL', key)
end
return {reply or false, out}
