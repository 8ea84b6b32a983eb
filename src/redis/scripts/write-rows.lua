-- Writes a batch of per-row keys (hash or value views), each replaced atomically, skipping any key
-- that a run with a higher sequence (a newer snapshot) already wrote. Records every written key in
-- the view's key index (score = sequence) so a full rebuild can find keys of vanished rows without
-- scanning the keyspace.
--
-- Cost matters here (one call per row of every rebuild), so two checks are made once per batch:
-- - per-key sequence checks only when some key of the view was written by a newer run (rare: a
--   partial refresh finishing during a full rebuild);
-- - a hash is emptied before being rewritten only when the view's field list differs from the one
--   every key was last rebuilt with (meta field 'fields'); otherwise HSET of all fields replaces it
--   atomically in one command.
--
-- KEYS[1] key index zset       {prefix}:view:{name}:keys
-- KEYS[2] view metadata hash   ('floor': sequences below it were superseded by a full rebuild;
--                               'fields': field list and ttl of the last full rebuild, 'a,b|ttl=60')
-- ARGV[1] sequence of this run
-- ARGV[2] ttl in seconds (0 = none)
-- ARGV[3] shape: 'hash' | 'value'
-- ARGV[4] n = number of fields per row (1 for 'value')
-- ARGV[5 .. 4+n] field names
-- then rows: key, value_1 .. value_n
-- Returns the number of keys written, or -1 when the whole run is older than the floor.
local seq = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[2], 'floor', 'fields')
if seq < tonumber(meta[1] or '0') then
  return -1
end
local ttl = tonumber(ARGV[2])
local isHash = ARGV[3] == 'hash'
local n = tonumber(ARGV[4])
local first = 5 + n
local checkEach = #redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. seq, '+inf', 'LIMIT', 0, 1) > 0
local fieldNames = {}
for f = 1, n do
  fieldNames[f] = ARGV[4 + f]
end
-- The signature covers the ttl too: HSET keeps a key's old expiry, so a view whose ttl was dropped
-- must empty its hashes once (DEL clears the expiry).
local sameFields = meta[2] == table.concat(fieldNames, ',') .. '|ttl=' .. ARGV[2]
local written = 0
local indexArgs = {}
local fieldArgs = {}
for i = first, #ARGV, n + 1 do
  local key = ARGV[i]
  local current = checkEach and redis.call('ZSCORE', KEYS[1], key)
  if not current or tonumber(current) <= seq then
    if isHash then
      for f = 1, n do
        fieldArgs[2 * f - 1] = fieldNames[f]
        fieldArgs[2 * f] = ARGV[i + f]
      end
      if not sameFields then
        redis.call('DEL', key)
      end
      redis.call('HSET', key, unpack(fieldArgs))
      if ttl > 0 then
        redis.call('EXPIRE', key, ttl)
      end
    elseif ttl > 0 then
      redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
    else
      redis.call('SET', key, ARGV[i + 1])
    end
    indexArgs[#indexArgs + 1] = seq
    indexArgs[#indexArgs + 1] = key
    written = written + 1
  end
end
if written > 0 then
  redis.call('ZADD', KEYS[1], unpack(indexArgs))
end
return written
