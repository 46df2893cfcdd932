-- put.lua: store records in one tier, log the change, and bump the agent's version.
-- KEYS: data, step, importance, since, meta, changes, pending
-- ARGV: tier name, tier the records leave ('' = none; a promotion out of LTM), '1' to queue the
--       records for text embedding, newest step in the batch, then the record sections of
--       put_records (lib.lua)
-- Returns the agent's new version.
put_records({data = KEYS[1], step = KEYS[2], importance = KEYS[3], since = KEYS[4]}, ARGV, 5)
local ids = put_ids(ARGV, 5)
note_change(KEYS[6], KEYS[5], 'add', ARGV[1], ids, ARGV[2])
if ARGV[3] == '1' then
  local queued = {}
  for _, id in ipairs(ids) do
    queued[#queued + 1] = ARGV[4]
    queued[#queued + 1] = id
  end
  bulk('ZADD', KEYS[7], queued)
end
raise_newest(KEYS[5], ARGV[4])
return bump(KEYS[5])
