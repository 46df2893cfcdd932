-- persist.lua: keep an agent's collaboration state and index it as its newest
-- (tiers/coordination/collaboration.py). Takes effect once (once.lua): sent again after another
-- session's persist it would move this one back above it.
-- KEYS: collab:<session>, the agent's collab index
-- ARGV: msgpack state, session id, persisted at (unix ms), states kept
-- The score is kept strictly above the newest other session's, so the latest persist is last
-- even within one millisecond or against a clock that went back. Returns 1.
redis.call('SET', KEYS[1], ARGV[1])
local score = tonumber(ARGV[3])
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #newest > 0 and newest[1] ~= ARGV[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
  local prefix = string.sub(KEYS[1], 1, #KEYS[1] - #ARGV[2])
  for _, session in ipairs(old) do redis.call('DEL', prefix .. session) end
end
return 1
