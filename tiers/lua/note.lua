-- note.lua: log a change made outside Redis (in LTM) and bump the agent's version.
-- KEYS: meta, changes, pending
-- ARGV: op ('add', 'del' or 'upd'), tier name, '1' to drop the ids from the text-embedding
--       queue, memory_id ...
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
note_change(KEYS[2], KEYS[1], ARGV[1], ARGV[2], ids)
if ARGV[3] == '1' and #ids > 0 then bulk('ZREM', KEYS[3], ids) end
return bump(KEYS[1])
