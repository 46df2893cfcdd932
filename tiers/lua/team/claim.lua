-- claim.lua: requeue a type's lapsed leases, then lease its best pending tasks to the claimer
-- (after forget.lua). Takes effect once (once.lua): a claim sent again returns the tasks it took.
-- KEYS: queue:<type>, leases:<type>, claims, agents (heartbeats), order, tasks, attempts,
--       leases_due:<type>, done, results
-- ARGV: now (unix ms), lease ms, claiming agent ('' only requeues), expired leases to examine,
--       tasks to claim at most, '1' to record the claimer's heartbeat, completed tasks to forget at most
-- Returns {task id, body, attempts, ...} in queue order, or false when nothing is pending.
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
forget(now, tonumber(ARGV[7]), KEYS[9], KEYS[6], KEYS[5], KEYS[7], KEYS[10])
-- no lease of the type ends before `due` (absent: not known), so most claims skip the lease scan
local due = tonumber(redis.call('GET', KEYS[8]) or '-1')
if due < 0 or due <= now then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  for _, id in ipairs(expired) do
    local holder = redis.call('HGET', KEYS[3], id)
    local beat = holder and redis.call('ZSCORE', KEYS[4], holder)
    if not holder then
      redis.call('ZREM', KEYS[2], id)
    elseif beat and tonumber(beat) + lease > now then
      redis.call('ZADD', KEYS[2], tonumber(beat) + lease, id)
    else
      redis.call('ZREM', KEYS[2], id)
      redis.call('HDEL', KEYS[3], id)
      redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[5], id), id)
    end
  end
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  due = tonumber(first[2] or '-1')
  if due < 0 then redis.call('DEL', KEYS[8]) else redis.call('SET', KEYS[8], first[2]) end
end
if ARGV[3] == '' then return false end
-- ZRANGE + ZREM rather than ZPOPMIN: the same inside a script, and O(log N) on every engine
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
if #ids == 0 then return false end
redis.call('ZREM', KEYS[1], unpack(ids))
local held, leased = {}, {}
for i, id in ipairs(ids) do
  held[2 * i - 1], held[2 * i] = id, ARGV[3]
  leased[2 * i - 1], leased[2 * i] = now + lease, id
end
redis.call('HSET', KEYS[3], unpack(held))
redis.call('ZADD', KEYS[2], unpack(leased))
if due < 0 or now + lease < due then redis.call('SET', KEYS[8], now + lease) end
local bodies = redis.call('HMGET', KEYS[6], unpack(ids))
local out = {}
for i, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = bodies[i]
  out[#out + 1] = redis.call('HINCRBY', KEYS[7], id, 1)
end
if ARGV[6] == '1' then redis.call('ZADD', KEYS[4], now, ARGV[3]) end
return out
