-- finish_decision.lua: unstage a decided pattern if this validator still holds its decision
-- (tiers/coordination/patterns.py). Idempotent by its token: the first call drops the lease, so
-- a call sent again changes nothing.
-- KEYS: staged:<id>, its bucket's staged index, decision:<id>, promoted:<id> (one bucket's tag)
-- ARGV: the validator's token, pattern id, '1' to mark it promoted, '' otherwise
-- Returns 1 finished, 0 the lease was not (or no longer) this validator's.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[4], '1') end
return 1
