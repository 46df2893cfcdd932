-- add.lua: queue one task (after forget.lua). Takes effect once (once.lua): it counts the seq.
-- KEYS: tasks, order, seq, types, queue:<type>, done, attempts, results
-- ARGV: task id, msgpack body, priority (0..1000), task type, now (unix ms)
-- Returns 1 added, 0 the id is taken.
local ends = redis.call('ZSCORE', KEYS[6], ARGV[1])
if ends and tonumber(ends) <= tonumber(ARGV[5]) then  -- completed, past its retention: the id is free
  drop({ARGV[1]}, KEYS[6], KEYS[1], KEYS[2], KEYS[7], KEYS[8])
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local seq = redis.call('INCR', KEYS[3])
local score = (1000 - tonumber(ARGV[3])) * 1099511627776 + seq
redis.call('HSET', KEYS[2], ARGV[1], score)
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[5], score, ARGV[1])
return 1
