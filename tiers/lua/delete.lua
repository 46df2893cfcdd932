-- delete.lua: remove memories from one tier; optionally drop their access statistics.
-- KEYS: data, step, importance, since, retention, meta, reads, seen, changes, pending
-- ARGV: drop_access ('1' or '0'), tier name, tier that now holds them ('' = none; 'ltm' when
--       maintenance moved them there), memory_id ...
-- The ids leave Redis's text-embedding queue either way: gone, or queued by LTM itself.
-- Returns the number of records removed.
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local removed = delete_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4],
                                retention = KEYS[5]}, ids)
if ARGV[1] == '1' and #ids > 0 then
  bulk('HDEL', KEYS[7], ids)
  bulk('HDEL', KEYS[8], ids)
end
if ARGV[3] ~= '' then
  note_change(KEYS[9], KEYS[6], 'add', ARGV[3], ids, ARGV[2])
else
  note_change(KEYS[9], KEYS[6], 'del', ARGV[2], ids)
end
if #ids > 0 then bulk('ZREM', KEYS[10], ids) end
bump(KEYS[6])
return removed
