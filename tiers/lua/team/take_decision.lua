-- take_decision.lua: lease a staged pattern's decision to one validator (tiers/coordination/patterns.py).
-- Idempotent by its token: a call sent again by the same validator finds its own lease and gets
-- the pattern again.
-- KEYS: staged:<id>, decision:<id>
-- ARGV: the validator's token, lease ms
-- Returns the staged pattern if this validator may decide it, else false.
local body = redis.call('GET', KEYS[1])
if not body then return false end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then return body end
if holder then return false end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return body
