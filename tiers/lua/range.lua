-- range.lua: read records in index order from one tier.
-- KEYS: index zset (step or importance), data, reads, seen, meta
-- ARGV: min, max, offset, count (-1 = all), reverse ('1' = descending), memory type ('' = any)
-- Queries never count reads (only get.lua, a focused read, does).
-- With a memory type, the index is scanned in chunks and records of other types skipped (the
-- type is read from each record blob: there is no per-type index to keep up on every write).
-- Returns {ids, blobs, access} (see collect in lib.lua).
local lo, hi, offset, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local reverse = ARGV[5] == '1'
local wanted = ARGV[6]
local function window(off, cnt)
  if reverse then
    return redis.call('ZREVRANGEBYSCORE', KEYS[1], hi, lo, 'LIMIT', off, cnt)
  end
  return redis.call('ZRANGEBYSCORE', KEYS[1], lo, hi, 'LIMIT', off, cnt)
end
if wanted == '' then
  return collect(window(offset, count), KEYS[2], KEYS[3], KEYS[4], KEYS[5], '', nil)
end
local ids, blobs = {}, {}
local skipped, position = 0, 0
local chunk = 1024
if count >= 0 then chunk = math.min(math.max(count * 2, 64), 1024) end
while count < 0 or #ids < count do
  local batch = window(position, chunk)
  if #batch == 0 then break end
  position = position + #batch
  local found = redis.call('HMGET', KEYS[2], unpack(batch))
  for i, id in ipairs(batch) do
    local blob = found[i]
    if blob and record_type(blob) == wanted then
      if skipped < offset then
        skipped = skipped + 1
      elseif count < 0 or #ids < count then
        ids[#ids + 1] = id
        blobs[#blobs + 1] = blob
      end
    end
  end
end
return collect(ids, KEYS[2], KEYS[3], KEYS[4], KEYS[5], '', blobs)
