-- Swaps a fully rebuilt zset in atomically. Members that partial refreshes newer than the rebuild
-- changed while it ran are first copied from the live key (or removed), so the swap never loses them.
--
-- KEYS[1] temporary zset built by the rebuild
-- KEYS[2] live zset
-- KEYS[3] member index zset
-- KEYS[4] view metadata hash ('floor')
-- ARGV[1] sequence of the rebuild
-- ARGV[2] ttl in seconds (0 = none)
-- Returns the number of newer members carried over.
local seq = tonumber(ARGV[1])
local newer = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. seq, '+inf')
for i = 1, #newer do
  local score = redis.call('ZSCORE', KEYS[2], newer[i])
  if score then
    redis.call('ZADD', KEYS[1], score, newer[i])
  else
    redis.call('ZREM', KEYS[1], newer[i])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  local ttl = tonumber(ARGV[2])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[2], ttl)
  else
    redis.call('PERSIST', KEYS[2])
  end
else
  redis.call('DEL', KEYS[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', seq)
redis.call('HSET', KEYS[4], 'floor', seq)
return #newer
