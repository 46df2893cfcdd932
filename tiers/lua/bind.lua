-- bind.lua: record which deployment a key prefix belongs to, unless one is recorded already.
-- KEYS: the deployment hash
-- ARGV: deployment id, where its LTM is (for messages)
-- Returns the hash as it now is (HGETALL): the id recorded first wins. A hash written here gets a
-- new incarnation, the Redis time in microseconds: processes that saw another one know Redis lost
-- what it held.
if redis.call('HSETNX', KEYS[1], 'id', ARGV[1]) == 1 then
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'ltm', ARGV[2], 'incarnation', now[1] .. string.format('%06d', tonumber(now[2])))
end
return redis.call('HGETALL', KEYS[1])
