-- delete.lua: remove memories from one tier; optionally drop their access statistics.
-- KEYS: data, step, importance, since, meta, reads, seen, changes, pending
-- ARGV: drop_access ('1' or '0'), tier name, tier that now holds them ('' = none: they are gone,
--       and leave the text-embedding queue too; 'ltm' when maintenance moved them there),
--       memory_id ...
-- Returns the number of records removed.
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local removed = delete_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}, ids)
if ARGV[1] == '1' and #ids > 0 then
  bulk('HDEL', KEYS[6], ids)
  bulk('HDEL', KEYS[7], ids)
end
if ARGV[3] ~= '' then
  note_change(KEYS[8], KEYS[5], 'add', ARGV[3], ids, ARGV[2])
else
  note_change(KEYS[8], KEYS[5], 'del', ARGV[2], ids)
  if #ids > 0 then bulk('ZREM', KEYS[9], ids) end
end
bump(KEYS[5])
return removed
