-- Removes a refreshed entry from the backlog unless it was marked again while its refresh ran (a
-- mark moves the score below the lease deadline): then the entry stays and runs once more. Called
-- only after the run succeeded (or the entry can never run): its claim covered every mark up to the
-- claim, so the entry's pending receipt becomes the first mark made during the run, or goes.
--
-- KEYS[1] refresh backlog zset   {prefix}:sinks:refresh
-- KEYS[2] pending zset           {prefix}:sinks:refresh:pending
-- KEYS[3] claimed hash           {prefix}:sinks:refresh:claimed
-- KEYS[4] next hash              {prefix}:sinks:refresh:next
-- ARGV[1] the lease deadline the entry was claimed with (ms)
-- ARGV[2] member
-- Returns 1 when removed, 0 when kept.
local nextSeq = redis.call('HGET', KEYS[4], ARGV[2])
if nextSeq then
  redis.call('ZADD', KEYS[2], nextSeq, ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if score and tonumber(score) == tonumber(ARGV[1]) then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
return 0
