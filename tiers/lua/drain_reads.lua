-- drain_reads.lua: take the focused reads maintenance flushed to SQL (or promoted) off the
-- pending counts, keeping reads other processes counted meanwhile.
-- KEYS: ltm reads, seen
-- ARGV: n, then n x (memory_id, reads taken), then memory ids whose last-seen stamp goes with them
--       once drained (those flushed to SQL)
-- Returns the ids left with no pending reads.
local n = tonumber(ARGV[1])
local drained, gone = {}, {}
for i = 0, n - 1 do
  local id = ARGV[2 + 2 * i]
  if redis.call('HINCRBY', KEYS[1], id, -tonumber(ARGV[3 + 2 * i])) <= 0 then
    redis.call('HDEL', KEYS[1], id)
    drained[#drained + 1] = id
    gone[id] = true
  end
end
for i = 2 + 2 * n, #ARGV do
  if gone[ARGV[i]] then redis.call('HDEL', KEYS[2], ARGV[i]) end
end
return drained
