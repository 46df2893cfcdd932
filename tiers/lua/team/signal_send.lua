-- signal_send.lua: append one signal to each recipient's stream (tiers/coordination/signals.py).
-- Takes effect once (once.lua): a send sent again returns the first send's entry id.
-- KEYS: the signal counter (orders signals across streams); then per recipient three keys:
--       stream, types set, bell stream
-- ARGV: signal type, ttl ms, sender, msgpack data, sent_at (unix s)
-- Returns the first entry id.
local t = redis.call('TIME')
local minid = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2]))
local seq = redis.call('INCR', KEYS[1])
local first
for i = 2, #KEYS, 3 do
  local id = redis.call('XADD', KEYS[i], 'MINID', minid, '*',
    'type', ARGV[1], 'sender', ARGV[3], 'data', ARGV[4], 'sent_at', ARGV[5], 'seq', seq)
  first = first or id
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  if redis.call('SADD', KEYS[i + 1], ARGV[1]) == 1 then  -- a type new to the recipient: ring its bell
    redis.call('XADD', KEYS[i + 2], 'MAXLEN', '1', '*', 'type', ARGV[1])
    redis.call('PEXPIRE', KEYS[i + 2], ARGV[2])
  end
  redis.call('PEXPIRE', KEYS[i + 1], ARGV[2])
end
return first
