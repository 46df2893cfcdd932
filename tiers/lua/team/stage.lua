-- stage.lua: stage a pattern unless the library has it or a validator is deciding it
-- (tiers/coordination/patterns.py). Takes effect once (once.lua): its answer depends on the
-- decision state, which a validator may change between a call and its re-sending.
-- KEYS: staged:<id>, its bucket's staged index, promoted:<id>, decision:<id> (one bucket's tag)
-- ARGV: msgpack pattern, ttl ms, pattern id, staged at (unix ms)
-- Returns 1 staged, 0 already in the library, -1 a validator is deciding it right now.
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then  -- rarely: which of the two
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
