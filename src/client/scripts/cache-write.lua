-- Stores a freshly loaded cached() entry, releases the lock and tells every process (key event on the
-- channel). Skipped when another process holds the lock: its load started later, so its value is
-- newer than ours.
--
-- KEYS[1]  entry   {prefix}:cache:{key}
-- KEYS[2]  lock    {prefix}:cache-lock:{key}
-- ARGV[1]  our lock token ('' when we load without the lock)
-- ARGV[2]  encoded entry
-- ARGV[3]  entry lifetime in Redis (ms): fresh time + stale-while-revalidate window
-- ARGV[4]  events channel   {prefix}:events
-- ARGV[5]  key event JSON
-- Returns 1 when stored, 0 when skipped.
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if holder then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
