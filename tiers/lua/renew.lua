-- renew.lua: extend a maintenance lease only if this process still holds it.
-- KEYS: lock   ARGV: token, lease in milliseconds
-- Returns 1 if renewed, 0 if the lease belongs to someone else (or expired).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
