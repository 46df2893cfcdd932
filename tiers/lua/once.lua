-- once.lua: a script call that takes effect once, however often it is sent (see tiers/scripts.py).
-- KEYS: the call's own keys, then the caller's request slot (same hash tag as the first key)
-- ARGV: the call's own arguments, then the request id
-- A call sent again after its reply was lost finds its request id in the slot and returns the
-- reply recorded there instead of running again. The slot holds the last call of one thread of
-- one process (a thread waits for each reply), so it stays small; it expires after ONCE_TTL_MS.
local ONCE_TTL_MS = 60000

local function encode(value)
  local kind = type(value)
  if kind == 'table' then
    if value.err then return 'e' .. #value.err .. ':' .. value.err end
    if value.ok then return 'o' .. #value.ok .. ':' .. value.ok end
    local parts = {'t', tostring(#value), ':'}
    for i = 1, #value do parts[#parts + 1] = encode(value[i]) end
    return table.concat(parts)
  elseif kind == 'string' then
    return 's' .. #value .. ':' .. value
  elseif kind == 'number' then
    return 'i' .. string.format('%d', value) .. ';'
  elseif value == true then
    return 'i1;'
  end
  return 'n'
end

local function decode(text, pos)
  local tag = string.sub(text, pos, pos)
  if tag == 'n' then return false, pos + 1 end
  if tag == 'i' then
    local stop = string.find(text, ';', pos, true)
    return tonumber(string.sub(text, pos + 1, stop - 1)), stop + 1
  end
  local colon = string.find(text, ':', pos, true)
  local size = tonumber(string.sub(text, pos + 1, colon - 1))
  if tag == 't' then
    local out, at = {}, colon + 1
    for i = 1, size do out[i], at = decode(text, at) end
    return out, at
  end
  local body = string.sub(text, colon + 1, colon + size)
  if tag == 'e' then return {err = body}, colon + size + 1 end
  if tag == 'o' then return {ok = body}, colon + size + 1 end
  return body, colon + size + 1
end

local slot, request = KEYS[#KEYS], ARGV[#ARGV]
local kept = redis.call('GET', slot)
if kept and string.sub(kept, 1, #request + 1) == request .. '|' then
  return (decode(kept, #request + 2))
end
local reply = (function(KEYS, ARGV)
-- the call --
end)({unpack(KEYS, 1, #KEYS - 1)}, {unpack(ARGV, 1, #ARGV - 1)})
redis.call('SET', slot, request .. '|' .. encode(reply), 'PX', ONCE_TTL_MS)
return reply
