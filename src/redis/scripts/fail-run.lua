-- Ends a failed run: records the reason and releases the lock. The view's data and version stay.
--
-- KEYS[1] view metadata hash
-- KEYS[2] run lock
-- ARGV[1] lock token
-- ARGV[2] one-line failure reason
-- ARGV[3] failed at (ISO-8601)
redis.call('HSET', KEYS[1], 'last_error', ARGV[2], 'last_error_at', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return 1
