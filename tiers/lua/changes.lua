-- changes.lua: the agent's change log since a reader's position.
-- KEYS: meta, changes
-- ARGV: position (the seq the reader has applied), most entries to return
-- Returns {seq now, first seq the log still covers - 1 (or seq now when it is empty), the
-- agent's version, entries}:
-- the reader missed nothing if covered <= its position <= seq now (a position past seq now means
-- the agent was cleared meanwhile: clearing restarts seq at the time in milliseconds).
local seq = tonumber(redis.call('HGET', KEYS[1], 'cseq') or '0')
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local covered = seq
if #oldest > 0 then
  local fields = oldest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then covered = tonumber(string.sub(oldest[1][1], 3)) - tonumber(fields[i + 1]) end
  end
end
local entries = {}
if tonumber(ARGV[1]) < seq then
  entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {seq, covered, redis.call('HGET', KEYS[1], 'version') or '0', entries}
