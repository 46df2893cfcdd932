-- ltm_stamp.lua: a new change stamp for a write to the agent's LTM rows (indices/snapshot.py).
-- KEYS: meta
-- ARGV: floor ('' = none): the stamp must come out above it (the highest stamp SQL holds, when
--       the counter started again)
-- Returns the stamp. Stamps only have to grow: one sent twice skips a number, harmlessly.
local stamp = redis.call('HINCRBY', KEYS[1], 'lseq', 1)
if ARGV[1] ~= '' and stamp <= tonumber(ARGV[1]) then
  stamp = redis.call('HINCRBY', KEYS[1], 'lseq', tonumber(ARGV[1]) - stamp + 1)
end
return stamp
