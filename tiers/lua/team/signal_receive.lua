-- signal_receive.lua: read a recipient's streams past its cursors and move the cursors
-- (tiers/coordination/signals.py). Takes effect once (once.lua): a read sent again returns the
-- signals the first read delivered, so a lost reply loses none.
-- KEYS: the recipient's cursor hash, then the streams to read (at least one)
-- ARGV: ttl ms, max entries per stream
-- Returns {{stream, id, fields}...} and, per stream, the id a blocking read waits for entries after.
local n = #KEYS - 1
local after = redis.call('HMGET', KEYS[1], unpack(KEYS, 2))
local args, position = {'COUNT', ARGV[2], 'STREAMS'}, {}
for i = 1, n do
  after[i] = after[i] or '0-0'
  position[KEYS[i + 1]] = i
  args[3 + i] = KEYS[i + 1]
  args[3 + n + i] = after[i]
end
local out, moved, oldest = {}, {}, nil
for _, read in ipairs(redis.call('XREAD', unpack(args)) or {}) do  -- Redis answers nil when nothing is new
  local key, entries = read[1], read[2]
  if #entries > 0 then
    if not oldest then  -- entries older than the TTL are skipped, on the Redis clock
      local t = redis.call('TIME')
      oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
    end
    local last = entries[#entries][1]
    after[position[key]] = last
    moved[#moved + 1] = key
    moved[#moved + 1] = last
    for _, entry in ipairs(entries) do
      if tonumber(string.match(entry[1], '^(%d+)')) > oldest then
        out[#out + 1] = {key, entry[1], entry[2]}
      end
    end
  end
end
if #moved > 0 then  -- the cursor lives as long as what it points into can be delivered
  redis.call('HSET', KEYS[1], unpack(moved))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {out, after}
