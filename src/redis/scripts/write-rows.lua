-- Writes a batch of per-row keys (hash or value views), each replaced atomically, skipping any key
-- that a run with a higher sequence (a newer snapshot) already wrote. Records every written key in
-- the view's key index (score = sequence) so a full rebuild can find keys of vanished rows without
-- scanning the keyspace.
--
-- KEYS[1] key index zset       {prefix}:view:{name}:keys
-- KEYS[2] view metadata hash   (field 'floor': sequences below it were superseded by a full rebuild)
-- ARGV[1] sequence of this run
-- ARGV[2] ttl in seconds (0 = none)
-- ARGV[3] shape: 'hash' | 'value'
-- ARGV[4] n = number of fields per row (1 for 'value')
-- ARGV[5 .. 4+n] field names
-- then rows: key, value_1 .. value_n
-- Returns the number of keys written, or -1 when the whole run is older than the floor.
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if seq < floor then
  return -1
end
local ttl = tonumber(ARGV[2])
local isHash = ARGV[3] == 'hash'
local n = tonumber(ARGV[4])
local first = 5 + n
local written = 0
local indexArgs = {}
local fieldArgs = {}
for i = first, #ARGV, n + 1 do
  local key = ARGV[i]
  local current = redis.call('ZSCORE', KEYS[1], key)
  if not current or tonumber(current) <= seq then
    if isHash then
      for f = 1, n do
        fieldArgs[2 * f - 1] = ARGV[4 + f]
        fieldArgs[2 * f] = ARGV[i + f]
      end
      redis.call('DEL', key)
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
