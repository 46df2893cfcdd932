-- set_vectors.lua: replace records whose derived fields (vectors) were rewritten, if unchanged.
-- KEYS: data, meta, changes, pending
-- ARGV: tier name, then triples (memory_id, blob read before, rewritten blob)
-- A record that changed or left the tier since it was read is skipped (the caller finds it
-- again); the ones written leave the text-embedding queue.
-- Returns the ids that were skipped.
local written, skipped = {}, {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[1], id) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], id, ARGV[i + 2])
    written[#written + 1] = id
  else
    skipped[#skipped + 1] = id
  end
end
if #written > 0 then
  bulk('ZREM', KEYS[4], written)
  note_change(KEYS[3], KEYS[2], 'upd', ARGV[1], written)
  bump(KEYS[2])
end
return skipped
