-- Extends a cached() lock while its loader runs, if it is still ours.
--
-- KEYS[1]  lock   {prefix}:cache-lock:{key}
-- ARGV[1]  our token
-- ARGV[2]  new lifetime (ms)
-- Returns 1 when extended, 0 when the lock is gone or someone else's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
