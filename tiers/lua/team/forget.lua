-- forget.lua: helpers prepended to add.lua, claim.lua and complete.lua (tiers/coordination/tasks.py).
-- No KEYS or ARGV of its own: the callers pass the team's keys.

-- drop(ids, done, tasks, order, attempts, results): forget completed tasks (their body, queue
-- order, attempts and result; the completion counts stay)
local function drop(ids, done, tasks, order, attempts, results)
  redis.call('ZREM', done, unpack(ids))
  for _, key in ipairs({tasks, order, attempts, results}) do redis.call('HDEL', key, unpack(ids)) end
end

-- forget(now, limit, ...): drop up to `limit` completed tasks whose retention ended by `now`, oldest first
local function forget(now, limit, done, tasks, order, attempts, results)
  local gone = redis.call('ZRANGEBYSCORE', done, '-inf', now, 'LIMIT', 0, limit)
  if #gone > 0 then drop(gone, done, tasks, order, attempts, results) end
end
