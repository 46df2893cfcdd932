-- signal_receive.lua: deliver a recipient's signals past its cursors and move the cursors
-- (tiers/coordination/signals.py). Takes effect once (once.lua): a read sent again returns what
-- the first read delivered, so a lost reply loses none.
-- KEYS: the recipient's cursor hash, then the recipient's own streams to read (any number)
-- ARGV: ttl ms, max entries per stream, the number of broadcast streams read before this call,
--       then per broadcast stream: its key, the cursor it was read past, the cursor after what
--       was read
-- The broadcasts (another slot) were read before this call: they count as delivered by it only
-- if no other reader acting as this agent moved their cursors meanwhile.
-- Returns {0, {each broadcast stream's cursor}} when one had moved (nothing delivered or moved),
-- else {1, {{stream, id, fields}...}, {per own stream, the id a blocking read waits after},
-- the oldest unix ms (Redis clock) a signal delivered now may be sent at}.
local nb = tonumber(ARGV[3])
if nb > 0 then
  local fields = {}
  for i = 1, nb do fields[i] = ARGV[3 * i + 1] end
  local current = redis.call('HMGET', KEYS[1], unpack(fields))
  local moved = false
  for i = 1, nb do
    current[i] = current[i] or '0-0'
    if current[i] ~= ARGV[3 * i + 2] then moved = true end
  end
  if moved then return {0, current} end
end
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])
local n = #KEYS - 1
local out, after, moved = {}, {}, {}
if n > 0 then
  after = redis.call('HMGET', KEYS[1], unpack(KEYS, 2))
  local args, position = {'COUNT', ARGV[2], 'STREAMS'}, {}
  for i = 1, n do
    after[i] = after[i] or '0-0'
    position[KEYS[i + 1]] = i
    args[3 + i] = KEYS[i + 1]
    args[3 + n + i] = after[i]
  end
  for _, read in ipairs(redis.call('XREAD', unpack(args)) or {}) do  -- Redis answers nil when nothing is new
    local key, entries = read[1], read[2]
    if #entries > 0 then
      local last = entries[#entries][1]
      after[position[key]] = last
      moved[#moved + 1] = key
      moved[#moved + 1] = last
      for _, entry in ipairs(entries) do  -- entries older than the TTL are skipped
        if tonumber(string.match(entry[1], '^(%d+)')) > oldest then
          out[#out + 1] = {key, entry[1], entry[2]}
        end
      end
    end
  end
end
for i = 1, nb do
  if ARGV[3 * i + 3] ~= ARGV[3 * i + 2] then
    moved[#moved + 1] = ARGV[3 * i + 1]
    moved[#moved + 1] = ARGV[3 * i + 3]
  end
end
if #moved > 0 then  -- the cursor lives as long as what it points into can be delivered
  redis.call('HSET', KEYS[1], unpack(moved))
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {1, out, after, oldest}
