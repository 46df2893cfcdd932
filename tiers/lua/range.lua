-- range.lua: read records in index order from one tier (see read_range in lib.lua).
-- KEYS: index zset (step or importance), data, reads, seen, meta
-- ARGV: min, max, offset, count (-1 = all), reverse ('1' = descending), memory type ('' = any)
return read_range(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],
  ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6])
