-- persist.lua: keep an agent's collaboration state and index it as its newest
-- (tiers/coordination/collaboration.py). Takes effect once (once.lua): sent again after another
-- session's persist it would move this one back above it.
-- KEYS: collab:<session>, the agent's collab index, then collab:<older> of each older session the
--       caller expects this persist to push out of the index (all under the agent's tag)
-- ARGV: msgpack state, session id, persisted at (unix ms), states kept, then those older session ids
-- The score is kept strictly above the newest other session's, so the latest persist is last
-- even within one millisecond or against a clock that went back. The oldest sessions past the
-- states kept leave the index with their state, as far as the caller named them (the next persist
-- trims the rest). Returns 1.
redis.call('SET', KEYS[1], ARGV[1])
local score = tonumber(ARGV[3])
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if #newest > 0 and newest[1] ~= ARGV[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  local named = {}
  for i = 5, #ARGV do named[ARGV[i]] = KEYS[i - 2] end
  for _, session in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    if not named[session] then break end  -- not declared: left for a later persist
    redis.call('ZREM', KEYS[2], session)
    redis.call('DEL', named[session])
  end
end
return 1
