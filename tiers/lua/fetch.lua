-- fetch.lua: what a query reads of one agent in one call: its change log since a position (when
-- asked) and records by id from STM and from IM, reads not counted (queries are not focused reads).
-- KEYS: meta, changes, STM data, IM data, reads, seen
-- ARGV: position ('' = no log), most entries, n, then n STM ids, then the IM ids
-- Returns {the log's answer (as changes.lua) or false, STM's {ids, blobs, access}, IM's}.
local log = false
if ARGV[1] ~= '' then log = changes_since(KEYS[1], KEYS[2], ARGV[1], ARGV[2]) end
local n = tonumber(ARGV[3])
local stm, im = {}, {}
for i = 4, 3 + n do stm[#stm + 1] = ARGV[i] end
for i = 4 + n, #ARGV do im[#im + 1] = ARGV[i] end
return {log, collect(stm, KEYS[3], KEYS[5], KEYS[6], KEYS[1], '', nil),
        collect(im, KEYS[4], KEYS[5], KEYS[6], KEYS[1], '', nil)}
