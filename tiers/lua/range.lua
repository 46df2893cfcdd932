-- range.lua: read records in index order from one tier.
-- KEYS: index zset, data, reads, seen, meta [, filter zset]
-- ARGV: min, max, offset, count (-1 = all), reverse ('1' = descending)
-- Queries never count reads (only get.lua, a focused read, does).
-- With a filter, only ids that are members of it are returned (scanned in chunks).
-- Returns {ids, blobs, access} (see collect in lib.lua).
local lo, hi, offset, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reverse = ARGV[5] == '1'
local function window(off, cnt)
  if reverse then
    return redis.call('ZREVRANGEBYSCORE', KEYS[1], hi, lo, 'LIMIT', off, cnt)
  end
  return redis.call('ZRANGEBYSCORE', KEYS[1], lo, hi, 'LIMIT', off, cnt)
end
local ids
if not KEYS[6] then
  ids = window(offset, count)
else
  ids = {}
  local skipped, position = 0, 0
  local chunk = math.max(count, 64)
  if count < 0 then chunk = 1024 end
  while count < 0 or #ids < count do
    local batch = window(position, chunk)
    if #batch == 0 then break end
    position = position + #batch
    for _, id in ipairs(batch) do
      if redis.call('ZSCORE', KEYS[6], id) then
        if skipped < offset then
          skipped = skipped + 1
        elseif count < 0 or #ids < count then
          ids[#ids + 1] = id
        end
      end
    end
  end
end
return collect(ids, KEYS[2], KEYS[3], KEYS[4], KEYS[5], '')
