-- signal_listen.lua: note that an agent is about to wait for signals, so that a broadcast sent
-- meanwhile rings its bell (tiers/coordination/signals.py), and list the broadcast types.
-- Idempotent: sent again it notes the same wait.
-- KEYS: the listeners zset, the broadcast types set
-- ARGV: the wait ("<agent id> <token>"), how long it waits (ms)
-- Returns the broadcast types.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))  -- waits that ended
redis.call('ZADD', KEYS[1], string.format('%.0f', now + wait), ARGV[1])
if redis.call('PTTL', KEYS[1]) < wait then redis.call('PEXPIRE', KEYS[1], wait) end
return redis.call('SMEMBERS', KEYS[2])
