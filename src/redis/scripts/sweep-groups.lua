-- Finishes a full rebuild of a list or set view, one chunk per call: every group still indexed with
-- a sequence below the rebuild's was not in its snapshot (and no newer run or append wrote it), so
-- the group is gone: delete its key (and its list head). The first call raises the floor so that
-- runs older than the rebuild can no longer write anything.
--
-- KEYS[1] key index zset
-- KEYS[2] view metadata hash ('floor')
-- KEYS[3] list heads hash
-- ARGV[1] sequence of the rebuild
-- ARGV[2] chunk size
-- Returns the number of groups removed by this call (0 = done).
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if seq > floor then
  redis.call('HSET', KEYS[2], 'floor', seq)
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. seq, 'LIMIT', 0, tonumber(ARGV[2]))
if #stale > 0 then
  redis.call('DEL', unpack(stale))
  redis.call('ZREM', KEYS[1], unpack(stale))
  redis.call('HDEL', KEYS[3], unpack(stale))
end
return #stale
