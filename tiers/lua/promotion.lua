-- promotion.lua: mark the start or the end of an LTM -> IM promotion (the seqlock readers check).
-- KEYS: meta
-- ARGV: 'begin' or 'end'
-- The counter is odd while a promotion runs. 'begin' makes it odd and 'end' even, each only if it
-- is not already, so a mark sent twice counts once. Returns the counter.
local promoting = tonumber(redis.call('HGET', KEYS[1], 'promoting') or '0')
if (ARGV[1] == 'begin') == (promoting % 2 == 0) then
  promoting = redis.call('HINCRBY', KEYS[1], 'promoting', 1)
end
return promoting
