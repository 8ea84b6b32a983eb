-- Removes a refreshed entry from the backlog unless it was marked again while its refresh ran (a
-- mark moves the score below the lease deadline): then the entry stays and runs once more.
--
-- KEYS[1] refresh backlog zset   {prefix}:sinks:refresh
-- ARGV[1] the lease deadline the entry was claimed with (ms)
-- ARGV[2] member
-- Returns 1 when removed, 0 when kept.
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if score and tonumber(score) == tonumber(ARGV[1]) then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
return 0
