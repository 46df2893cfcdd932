-- lib.lua: helpers prepended to every tiermem script (see tiers/scripts.py).
-- Redis's Lua caps unpack() at ~8000 values, so bulk commands go out in chunks of CHUNK.
local CHUNK = 4000

local function bulk(command, key, values)
  local total = #values
  local i = 1
  while i <= total do
    local j = math.min(i + CHUNK - 1, total)
    redis.call(command, key, unpack(values, i, j))
    i = j + 1
  end
end

-- Run command on key with argv[from .. to] as its arguments, in chunks (pairs stay whole).
local function bulk_argv(command, key, argv, from, to)
  local i = from
  while i <= to do
    local j = math.min(i + CHUNK - 1, to)
    redis.call(command, key, unpack(argv, i, j))
    i = j + 1
  end
end

-- Store records in one tier. The caller (RedisTier.put_sections) sends argv[first ..] already in
-- command shape, so nothing is rebuilt here:
--   n, n x (id, blob), n x (step, id), n x (importance, id), n x (now, id),
--   then one count per memory type and that many (step, id) pairs per type, in MEMORY_TYPES order.
-- Returns the position after the sections.
local function put_records(tier, type_keys, argv, first)
  local n = tonumber(argv[first])
  local pos = first + 1
  bulk_argv('HSET', tier.data, argv, pos, pos + 2 * n - 1)
  pos = pos + 2 * n
  for _, key in ipairs({tier.step, tier.importance, tier.since}) do
    bulk_argv('ZADD', key, argv, pos, pos + 2 * n - 1)
    pos = pos + 2 * n
  end
  local counts = {}
  for t = 1, #type_keys do counts[t] = tonumber(argv[pos + t - 1]) end
  pos = pos + #type_keys
  for t = 1, #type_keys do
    if counts[t] > 0 then bulk_argv('ZADD', type_keys[t], argv, pos, pos + 2 * counts[t] - 1) end
    pos = pos + 2 * counts[t]
  end
  return pos
end

-- Remove ids from one tier: the records, their step/importance/since entries, and their type
-- entries. type_ids[t] lists the ids of type t; with type_ids nil the types are unknown and every
-- type index is cleaned. Returns the number of records removed.
local function delete_records(tier, type_keys, ids, type_ids)
  local removed = 0
  local total = #ids
  local i = 1
  while i <= total do
    local j = math.min(i + CHUNK - 1, total)
    removed = removed + redis.call('HDEL', tier.data, unpack(ids, i, j))
    redis.call('ZREM', tier.step, unpack(ids, i, j))
    redis.call('ZREM', tier.importance, unpack(ids, i, j))
    redis.call('ZREM', tier.since, unpack(ids, i, j))
    i = j + 1
  end
  for t, key in ipairs(type_keys) do
    local of_type = ids
    if type_ids then of_type = type_ids[t] end
    if #of_type > 0 then bulk('ZREM', key, of_type) end
  end
  return removed
end

-- Read "k counts, then that many ids per type" from argv[first ..] into (all ids, ids by type).
local function typed_ids(argv, first, k)
  local ids, by_type = {}, {}
  local pos = first + k
  for t = 1, k do
    by_type[t] = {}
    for _ = 1, tonumber(argv[first + t - 1]) do
      ids[#ids + 1] = argv[pos]
      by_type[t][#by_type[t] + 1] = argv[pos]
      pos = pos + 1
    end
  end
  return ids, by_type
end

local function bump(meta)
  return redis.call('HINCRBY', meta, 'version', 1)
end

local function raise_newest(meta, step)
  local newest = redis.call('HGET', meta, 'newest')
  if (not newest) or tonumber(newest) < tonumber(step) then
    redis.call('HSET', meta, 'newest', step)
  end
end

-- Read the records of ids that exist. Returns {ids, blobs, access}, where access lists
-- (position in ids, retrieval count, last seen) only for memories that were ever focused.
-- With now ~= '' the read is counted: reads += 1 and seen = now|newest step.
local function collect(ids, data, reads, seen, meta, now)
  local stamp = nil
  if now ~= '' then stamp = now .. '|' .. (redis.call('HGET', meta, 'newest') or '') end
  -- every focused read stamps `seen`: an agent without one has no access statistics to fetch
  local any_access = stamp ~= nil or redis.call('EXISTS', seen) == 1
  local out_ids, out_blobs, access = {}, {}, {}
  local total = #ids
  local first = 1
  while first <= total do
    local last = math.min(first + CHUNK - 1, total)
    local blobs = redis.call('HMGET', data, unpack(ids, first, last))
    local counts, lasts
    if stamp then
      counts, lasts = {}, {}
      local stamped = {}
      for i = 1, last - first + 1 do
        if blobs[i] then
          local id = ids[first + i - 1]
          counts[i] = redis.call('HINCRBY', reads, id, 1)
          lasts[i] = stamp
          stamped[#stamped + 1] = id
          stamped[#stamped + 1] = stamp
        end
      end
      bulk('HSET', seen, stamped)
    elseif any_access then
      counts = redis.call('HMGET', reads, unpack(ids, first, last))
      lasts = redis.call('HMGET', seen, unpack(ids, first, last))
    else
      counts, lasts = {}, {}
    end
    for i = 1, last - first + 1 do
      if blobs[i] then
        out_ids[#out_ids + 1] = ids[first + i - 1]
        out_blobs[#out_blobs + 1] = blobs[i]
        if counts[i] or lasts[i] then
          access[#access + 1] = #out_ids
          access[#access + 1] = tostring(counts[i] or '0')
          access[#access + 1] = lasts[i] or ''
        end
      end
    end
    first = last + 1
  end
  return {out_ids, out_blobs, access}
end
