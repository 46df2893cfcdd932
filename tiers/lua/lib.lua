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

-- The memory type inside a record blob (layout in tiers/codec.py): a msgpack array whose first
-- element is the step (a non-negative int: 1, 2, 3, 5 or 9 bytes) and whose second is the type.
local INT_SIZE = {[0xcc] = 2, [0xcd] = 3, [0xce] = 5, [0xcf] = 9}
local function record_type(blob)
  local pos = 3 + (INT_SIZE[string.byte(blob, 2)] or 1) - 1
  local len = string.byte(blob, pos) - 0xa0  -- a fixstr: type names are short
  return string.sub(blob, pos + 1, pos + len)
end

-- Retention keys: maintenance demotes a tier's lowest first (memory/_engine/maintenance.py).
-- retention = importance x decay ^ (age / decay_steps) compares as its logarithm, and the part
-- that depends on the agent's newest step is the same for all its memories, so the key is
-- ln(importance) + step x rate, rate = -ln(decay) / decay_steps: it never changes as the agent
-- ages. Importance 0 sits below every positive one (ln of the smallest double is about -745) and
-- still orders by step. The rate is the agent's (meta field rrate, set by its first store);
-- maintenance run with another setting builds the keys again (retention.lua).
local ZERO_IMPORTANCE = -1e12
local function retention_base(importance)
  if importance > 0 then return math.log(importance) end
  return ZERO_IMPORTANCE
end
-- A number: redis.call writes it with 17 significant digits, the same double again.
local function retention_key(importance, step, rate)
  return retention_base(importance) + step * rate
end

-- The agent's rate; ``proposed`` (the caller's setting) becomes it for an agent's first store.
local function retention_rate(meta, proposed)
  local rate = redis.call('HGET', meta, 'rrate')
  if rate then return tonumber(rate) end
  if redis.call('HEXISTS', meta, 'version') == 0 then redis.call('HSET', meta, 'rrate', proposed) end
  return tonumber(proposed)
end

-- Store records in one tier. The caller (RedisTier.put_sections) sends argv[first ..] already in
-- command shape, so nothing is rebuilt here:
--   n, then n x (id, blob), n x (step, id), n x (importance, id), n x (now, id)
-- tier.rate: the agent's retention rate (retention_rate).
local function put_records(tier, argv, first)
  local n = tonumber(argv[first])
  local pos = first + 1
  bulk_argv('HSET', tier.data, argv, pos, pos + 2 * n - 1)
  pos = pos + 2 * n
  local steps, importances = pos, pos + 2 * n
  for _, key in ipairs({tier.step, tier.importance, tier.since}) do
    bulk_argv('ZADD', key, argv, pos, pos + 2 * n - 1)
    pos = pos + 2 * n
  end
  local keys, bases = {}, {}  -- importances repeat (1.0 unless a store says otherwise): one log each
  for i = 0, n - 1 do
    local importance = argv[importances + 2 * i]
    local base = bases[importance]
    if base == nil then
      base = retention_base(tonumber(importance))
      bases[importance] = base
    end
    keys[2 * i + 1] = base + tonumber(argv[steps + 2 * i]) * tier.rate
    keys[2 * i + 2] = argv[steps + 2 * i + 1]
  end
  bulk('ZADD', tier.retention, keys)
  return n
end

-- Remove ids from one tier: the records and their step/importance/since/retention entries.
-- Returns the number of records removed.
local function delete_records(tier, ids)
  local removed = 0
  local total = #ids
  local i = 1
  while i <= total do
    local j = math.min(i + CHUNK - 1, total)
    removed = removed + redis.call('HDEL', tier.data, unpack(ids, i, j))
    redis.call('ZREM', tier.step, unpack(ids, i, j))
    redis.call('ZREM', tier.importance, unpack(ids, i, j))
    redis.call('ZREM', tier.since, unpack(ids, i, j))
    redis.call('ZREM', tier.retention, unpack(ids, i, j))
    i = j + 1
  end
  return removed
end

-- The agent's change log (stream, see tiers/keys.py). Each entry names one operation on one
-- tier and the ids it touched; its id is 0-<seq>, seq counting changed ids, so a reader knows
-- whether it missed an entry (the previous entry's seq must be its own seq - n). The log keeps
-- about CHANGES_KEPT ids (an engine setting, MemoryConfig.change_log_limit); a reader that fell
-- further behind rebuilds from the tiers.
local CHANGES_KEPT = {{CHANGE_LOG_IDS}}
-- ``from`` (optional) names the tier the ids left in the same step: one entry for a move.
local function note_change(changes, meta, op, tier, ids, from)
  local n = #ids
  if n == 0 then return end
  local seq = redis.call('HINCRBY', meta, 'cseq', n)
  local minid = string.format('0-%d', math.max(1, seq - CHANGES_KEPT))
  local id = string.format('0-%d', seq)
  local joined = table.concat(ids, ' ')
  -- approximate trimming ('~'): whole stream nodes go, so the log keeps up to a node (100
  -- entries or 4 KiB) more than CHANGES_KEPT ids; an exact trim moves a node's bytes on every call
  if from and from ~= '' then
    redis.call('XADD', changes, 'MINID', '~', minid, id, 'op', op, 'tier', tier, 'n', n, 'ids', joined, 'from', from)
  else
    redis.call('XADD', changes, 'MINID', '~', minid, id, 'op', op, 'tier', tier, 'n', n, 'ids', joined)
  end
end

-- The log after a reader's position: {seq now, the agent's version, entries after the position,
-- its incarnation} (see changes.lua for how a reader tells it missed nothing).
local function changes_since(meta, changes, position, most)
  local state = redis.call('HMGET', meta, 'cseq', 'version', 'inc')
  local seq = tonumber(state[1] or '0')
  local entries = {}
  if tonumber(position) < seq then
    entries = redis.call('XRANGE', changes, '(0-' .. position, '+', 'COUNT', most)
  end
  return {seq, state[2] or '0', entries, state[3] or false}
end

-- The ids of the (id, blob) section of put_records' arguments.
local function put_ids(argv, first)
  local ids = {}
  for i = 0, tonumber(argv[first]) - 1 do ids[#ids + 1] = argv[first + 1 + 2 * i] end
  return ids
end

-- The agent's incarnation (field inc of its meta hash, see tiers/bookkeeping.py): the Redis time
-- in microseconds when the hash was created. Every script that moves the version sets it on the
-- first move, so a hash created again after Redis lost its data has another one.
local function incarnation_now()
  local now = redis.call('TIME')
  return now[1] .. string.format('%06d', tonumber(now[2]))
end

local function bump(meta)
  local version = redis.call('HINCRBY', meta, 'version', 1)
  if version == 1 then redis.call('HSETNX', meta, 'inc', incarnation_now()) end
  return version
end

local function raise_newest(meta, step)
  local newest = redis.call('HGET', meta, 'newest')
  if (not newest) or tonumber(newest) < tonumber(step) then
    redis.call('HSET', meta, 'newest', step)
  end
end

-- Read the records of ids that exist. Returns {ids, blobs, access}, where access lists
-- (position in ids, retrieval count, last seen) only for memories that were ever focused.
-- With now ~= '' the read is counted: reads += 1 and seen = now|newest step, and the agent's
-- version moves (queries report the counts, so answers cached before are stale).
local function collect(ids, data, reads, seen, meta, now, known)
  local stamp = nil
  if now ~= '' then stamp = now .. '|' .. (redis.call('HGET', meta, 'newest') or '') end
  -- every focused read stamps `seen`: an agent without one has no access statistics to fetch
  local any_access = stamp ~= nil or redis.call('EXISTS', seen) == 1
  local out_ids, out_blobs, access = {}, {}, {}
  local total = #ids
  local first = 1
  while first <= total do
    local last = math.min(first + CHUNK - 1, total)
    local blobs
    if known then
      blobs = {}
      for i = first, last do blobs[i - first + 1] = known[i] end
    else
      blobs = redis.call('HMGET', data, unpack(ids, first, last))
    end
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
  if stamp and #out_ids > 0 then bump(meta) end
  return {out_ids, out_blobs, access}
end

-- Records of one tier in index order (step or importance): ids between lo and hi, skipping
-- offset and returning at most count (-1 = all), descending when reverse, only of type wanted
-- ('' = any). With a type, the index is scanned in chunks and records of other types skipped
-- (the type is read from each record blob: no per-type index to keep up on every write).
-- Never a counted read. Returns {ids, blobs, access} (see collect).
local function read_range(index, data, reads, seen, meta, lo, hi, offset, count, reverse, wanted)
  local function window(off, cnt)
    if reverse then
      return redis.call('ZREVRANGEBYSCORE', index, hi, lo, 'LIMIT', off, cnt)
    end
    return redis.call('ZRANGEBYSCORE', index, lo, hi, 'LIMIT', off, cnt)
  end
  if wanted == '' then
    return collect(window(offset, count), data, reads, seen, meta, '', nil)
  end
  local ids, blobs = {}, {}
  local skipped, position = 0, 0
  local chunk = 1024
  if count >= 0 then chunk = math.min(math.max(count * 2, 64), 1024) end
  while count < 0 or #ids < count do
    local batch = window(position, chunk)
    if #batch == 0 then break end
    position = position + #batch
    local found = redis.call('HMGET', data, unpack(batch))
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
  return collect(ids, data, reads, seen, meta, '', blobs)
end
