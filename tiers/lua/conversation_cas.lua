-- conversation_cas.lua: write a conversation's memory if its version is still the one the caller
-- read, once per request however often the call is sent (tiers/conversation_redis.py).
-- KEYS[1]  <prefix>:conversation:{<id>}                    hash: the conversation
-- KEYS[2]  <prefix>:conversation:{<id>}:request:<request>  string: the version this request wrote
-- ARGV[1]  expected version ("0": the hash must not exist)
-- ARGV[2]  working_memory  ARGV[3] turn_count  ARGV[4] turns (JSON)  ARGV[5] updated_at
-- ARGV[6]  the hash's TTL in milliseconds ("0": it never expires)
-- ARGV[7]  how long the request key is kept, in milliseconds
-- Returns the new version, or 0 when another writer got there first (nothing written). A call sent
-- again after its reply was lost finds its request key and returns the version it wrote, even
-- when other writers wrote on top of it meanwhile.
local written = redis.call('GET', KEYS[2])
if written then
  return tonumber(written)
end
local current = redis.call('HGET', KEYS[1], 'version') or '0'
if current ~= ARGV[1] then
  return 0
end
local version = tonumber(current) + 1
redis.call('HSET', KEYS[1], 'version', version, 'working_memory', ARGV[2], 'turn_count', ARGV[3],
           'turns', ARGV[4], 'updated_at', ARGV[5])
if ARGV[6] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('SET', KEYS[2], version, 'PX', ARGV[7])
return version
