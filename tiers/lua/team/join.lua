-- join.lua: add a participant to a team session and renew the session's keys
-- (tiers/coordination/sessions.py). Takes effect once (once.lua): sent again it would find the
-- agent there already and answer 0.
-- KEYS: info, participants, shared
-- ARGV: agent id, joined at (unix s), session id, ttl ms
-- Returns 1 if the agent was not a participant yet, else 0.
local added = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[1], 'session_id', ARGV[3])  -- recreate info if the session had expired
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return added
