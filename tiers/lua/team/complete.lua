-- complete.lua: record a claimed task's result (after forget.lua). Takes effect once (once.lua):
-- it counts the completion.
-- KEYS: claims, leases:<type>, results, stats, agents, done, tasks, order, attempts
-- ARGV: task id, completing agent, msgpack result record, task type, now (unix ms),
--       when its retention ends (unix ms), completed tasks to forget at most
-- Returns {1, holder} done, {0, ''} not claimed, {-1, holder} held by another agent.
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then return {0, ''} end
if ARGV[2] ~= holder then return {-1, holder} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[4], 'total', 1)
redis.call('HINCRBY', KEYS[4], 'agent:' .. holder, 1)
redis.call('HINCRBY', KEYS[4], 'type:' .. ARGV[4], 1)
redis.call('ZADD', KEYS[5], ARGV[5], holder)
forget(tonumber(ARGV[5]), tonumber(ARGV[7]), KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[3])
redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
return {1, holder}
