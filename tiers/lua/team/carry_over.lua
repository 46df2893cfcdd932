-- carry_over.lua: put a staged pattern of the earlier key layout into its bucket
-- (tiers/coordination/patterns.py), unless the bucket has the pattern already. Idempotent: sent
-- again it finds the pattern there.
-- KEYS: staged:<id>, the bucket's staged index, promoted:<id>
-- ARGV: msgpack pattern, ms it has left to live (-1: no expiry), pattern id, staged at (unix ms)
-- Returns 1 carried over, 0 the bucket has it (staged again since, or promoted).
if redis.call('EXISTS', KEYS[1], KEYS[3]) > 0 then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
