-- Releases a cached() lock if it is still ours (a lock that expired and was taken over is left alone).
--
-- KEYS[1]  lock   {prefix}:cache-lock:{key}
-- ARGV[1]  our token
-- Returns 1 when released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
