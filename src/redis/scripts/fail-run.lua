-- Ends a failed run: records the reason and releases the run's locks. The view's data and version stay.
--
-- KEYS[1] view metadata hash
-- KEYS[2 ..] the run's locks
-- ARGV[1] lock token
-- ARGV[2] one-line failure reason
-- ARGV[3] failed at (ISO-8601)
redis.call('HSET', KEYS[1], 'last_error', ARGV[2], 'last_error_at', ARGV[3])
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
return 1
