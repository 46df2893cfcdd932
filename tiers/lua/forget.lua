-- forget.lua: delete memories from both Redis tiers, with every index entry and read statistic.
-- KEYS: stm data, step, importance, since, retention, im data, step, importance, since,
--       retention, meta, reads, seen, ltm_reads, changes, pending
-- ARGV: memory_id ...
-- Each tier that held an id logs its deletion; the ids leave the read counts (LTM's unflushed
-- ones too: the caller deletes LTM's rows next) and the text-embedding queue.
-- Returns the ids either tier held.
local ids = {}
for i = 1, #ARGV do ids[#ids + 1] = ARGV[i] end
local removed, seen = {}, {}
for t = 0, 1 do
  local base = 5 * t
  local held = {}
  for _, id in ipairs(ids) do
    if redis.call('HEXISTS', KEYS[1 + base], id) == 1 then held[#held + 1] = id end
  end
  if #held > 0 then
    delete_records({data = KEYS[1 + base], step = KEYS[2 + base], importance = KEYS[3 + base],
                    since = KEYS[4 + base], retention = KEYS[5 + base]}, held)
    note_change(KEYS[15], KEYS[11], 'del', t == 0 and 'stm' or 'im', held)
    for _, id in ipairs(held) do
      if not seen[id] then
        seen[id] = true
        removed[#removed + 1] = id
      end
    end
  end
end
if #ids > 0 then
  bulk('HDEL', KEYS[12], ids)
  bulk('HDEL', KEYS[13], ids)
  bulk('HDEL', KEYS[14], ids)
  bulk('ZREM', KEYS[16], ids)
end
bump(KEYS[11])
return removed
