-- release_decision.lua: drop a decision lease if it is still this validator's (idempotent by its token).
-- KEYS: decision:<id>
-- ARGV: the validator's token
-- Returns 1 dropped, 0 not ours (or gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
