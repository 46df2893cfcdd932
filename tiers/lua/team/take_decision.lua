-- take_decision.lua: lease a staged pattern's decision to one validator (tiers/coordination/patterns.py).
-- KEYS: staged:<id>, decision:<id>
-- ARGV: the validator's token, lease ms
-- Returns the staged pattern if this validator may decide it, else false.
local body = redis.call('GET', KEYS[1])
if not body then return false end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return body
