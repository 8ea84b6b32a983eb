-- Writes a batch of groups of a list or set view, each group's key replaced atomically (DEL, then
-- RPUSH or SADD of every element, in this one script: a reader sees the old group or the new one,
-- never part of it), skipping any group that a run or an append with a higher sequence already
-- wrote. Like write-rows.lua, every written key is recorded in the key index (score = sequence) so
-- a full rebuild can sweep the groups that disappeared; an empty group deletes the key and leaves a
-- tombstone in the index.
--
-- KEYS[1] key index zset       {prefix}:view:{name}:keys
-- KEYS[2] view metadata hash   ('floor': sequences below it were superseded by a full rebuild)
-- KEYS[3] list heads hash      {prefix}:view:{name}:heads (list views: group key -> order key of
--                              the first element, which append-list.lua compares against)
-- ARGV[1] sequence of this run
-- ARGV[2] ttl in seconds (0 = none)
-- ARGV[3] shape: 'list' | 'set'
-- then groups: key, order key of the first element ('' for sets), n, element_1 .. element_n
--   (n = 0: the group has no rows, delete it; n = -1: its rows could not be written, keep what is
--   there but index it so that the sweep does not delete it)
-- Returns {written, skipped key, ...}: the groups a newer write had already touched are skipped
-- and named; {-1} when the whole run is older than the floor.
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if seq < floor then
  return {-1}
end
local ttl = tonumber(ARGV[2])
local isList = ARGV[3] == 'list'
local command = isList and 'RPUSH' or 'SADD'
-- Per-group sequence checks only when some group was written by a newer run (rare).
local checkEach = #redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. seq, '+inf', 'LIMIT', 0, 1) > 0
local out = {0}
-- The index and the list heads are updated once per call, not once per group.
local indexArgs = {}
local heads = {}
local gone = {}
local i = 4
while i <= #ARGV do
  local key = ARGV[i]
  local head = ARGV[i + 1]
  local n = tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + math.max(n, 0)
  local current = checkEach and redis.call('ZSCORE', KEYS[1], key)
  if current and tonumber(current) > seq then
    out[#out + 1] = key
  else
    if n >= 0 then
      redis.call('DEL', key)
      -- unpack() is bounded by Lua's C stack: push in slices.
      for from = first, first + n - 1, 1000 do
        redis.call(command, key, unpack(ARGV, from, math.min(from + 999, first + n - 1)))
      end
      if n > 0 and ttl > 0 then
        redis.call('EXPIRE', key, ttl)
      end
      if isList then
        if n > 0 then
          heads[#heads + 1] = key
          heads[#heads + 1] = head
        else
          gone[#gone + 1] = key
        end
      end
      out[1] = out[1] + 1
    end
    indexArgs[#indexArgs + 1] = seq
    indexArgs[#indexArgs + 1] = key
  end
end
if #indexArgs > 0 then
  redis.call('ZADD', KEYS[1], unpack(indexArgs))
end
if #heads > 0 then
  redis.call('HSET', KEYS[3], unpack(heads))
end
if #gone > 0 then
  redis.call('HDEL', KEYS[3], unpack(gone))
end
return out
