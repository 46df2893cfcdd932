-- signal_send.lua: append one signal to one stream, a recipient's or a type's broadcasts
-- (tiers/coordination/signals.py). Takes effect once (once.lua): a send sent again returns the
-- first send's entry id.
-- KEYS: the stream, the types set beside it (the recipient's, or the broadcasts'), then for a
--       recipient its bell
-- ARGV: signal type, ttl ms, sender, msgpack data, sent_at (unix s), an entry id the new one must
--       be above ("<ms>-<n>": the newest the sending process has seen)
-- The entry id orders signals across streams: the Redis clock as "<unix ms>-<microseconds within
-- the ms>", raised above the given id and the stream's last. Returns the entry id.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms, n = now_ms, tonumber(t[2]) % 1000
local function above(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  a, b = tonumber(a), tonumber(b)
  if a and (a > ms or (a == ms and b >= n)) then ms, n = a, b + 1 end
end
above(ARGV[6])
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then above(last[1][1]) end
local id = string.format('%.0f-%.0f', ms, n)
redis.call('XADD', KEYS[1], 'MINID', string.format('%.0f', now_ms - tonumber(ARGV[2])), id,
  'type', ARGV[1], 'sender', ARGV[3], 'data', ARGV[4], 'sent_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 and KEYS[3] then  -- a type new to the recipient: ring its bell
  redis.call('XADD', KEYS[3], 'MAXLEN', '1', '*', 'type', ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return id
