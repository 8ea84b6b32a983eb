-- Finishes a full rebuild of a per-row view, one chunk per call: every key still indexed with a
-- sequence below the rebuild's was not in its snapshot (and no newer run wrote it), so its row is
-- gone: delete it. The first call raises the floor so that runs older than the rebuild can no longer
-- write anything.
--
-- KEYS[1] key index zset
-- KEYS[2] view metadata hash ('floor')
-- ARGV[1] sequence of the rebuild
-- ARGV[2] chunk size
-- ARGV[3] the field list every key was just rewritten with ('' for value views)
-- Returns the number of index entries removed by this call (0 = done).
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if seq > floor then
  -- Every live key now holds exactly these fields: later writes need not empty hashes first.
  redis.call('HSET', KEYS[2], 'floor', seq, 'fields', ARGV[3])
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. seq, 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #stale do
  redis.call('DEL', stale[i])
end
if #stale > 0 then
  redis.call('ZREM', KEYS[1], unpack(stale))
end
return #stale
