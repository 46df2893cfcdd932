-- put.lua: store records in one tier, log the change, and bump the agent's version.
-- KEYS: data, step, importance, since, retention, meta, changes, pending, the other Redis tier's
--       data
-- ARGV: tier name, tier the records leave ('' = none; a promotion out of LTM), '1' to queue the
--       records for text embedding, newest step in the batch, '1' to skip records already
--       stored in either Redis tier (a call sent again after its reply was lost, or a store with
--       an idempotency key: nothing is written twice), the caller's retention rate
--       (retention_rate, lib.lua), then the record sections of put_records (lib.lua)
-- Returns the agent's new version.
local argv, first = ARGV, 7
if ARGV[5] == '1' then
  local n = tonumber(ARGV[7])
  local keep = {}
  for i = 0, n - 1 do
    local id = ARGV[8 + 2 * i]
    if redis.call('HEXISTS', KEYS[1], id) == 0 and redis.call('HEXISTS', KEYS[9], id) == 0 then
      keep[#keep + 1] = i
    end
  end
  if #keep == 0 then return tonumber(redis.call('HGET', KEYS[6], 'version') or '0') end
  argv = {#keep}
  for section = 0, 3 do
    for _, i in ipairs(keep) do
      argv[#argv + 1] = ARGV[8 + 2 * n * section + 2 * i]
      argv[#argv + 1] = ARGV[9 + 2 * n * section + 2 * i]
    end
  end
  first = 1
end
local rate = retention_rate(KEYS[6], ARGV[6])
put_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4], retention = KEYS[5], rate = rate},
            argv, first)
local ids = put_ids(argv, first)
note_change(KEYS[7], KEYS[6], 'add', ARGV[1], ids, ARGV[2])
if ARGV[3] == '1' then
  local queued = {}
  for _, id in ipairs(ids) do
    queued[#queued + 1] = ARGV[4]
    queued[#queued + 1] = id
  end
  bulk('ZADD', KEYS[8], queued)
end
raise_newest(KEYS[6], ARGV[4])
return bump(KEYS[6])
