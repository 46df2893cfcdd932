-- once.lua: a script call that takes effect once, however often it is sent (see tiers/scripts.py).
-- KEYS: the call's own keys, then the caller's request slot (same hash tag as the first key)
-- ARGV: the call's own arguments, then the request id
-- A call sent again after its reply was lost finds its request id in the slot and returns the
-- reply recorded there (msgpack, Redis's cmsgpack: binary-safe; an error reply is a table with an
-- err field, as Redis keeps it) instead of running again. The slot holds the last call of one
-- thread of one process (a thread waits for each reply), so it stays small; it expires after
-- ONCE_TTL_MS. Only a Redis server runs this wrapper: in-process engines lose no replies.
local ONCE_TTL_MS = 60000

local slot, request = KEYS[#KEYS], ARGV[#ARGV]
local kept = redis.call('GET', slot)
if kept and string.find(kept, request .. '|', 1, true) == 1 then
  return cmsgpack.unpack(string.sub(kept, #request + 2))
end
local reply = (function(KEYS, ARGV)
-- the call --
end)({unpack(KEYS, 1, #KEYS - 1)}, {unpack(ARGV, 1, #ARGV - 1)})
redis.call('SET', slot, request .. '|' .. cmsgpack.pack(reply), 'PX', ONCE_TTL_MS)
return reply
