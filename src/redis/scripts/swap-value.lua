-- Swaps a rebuilt json string in atomically (RENAME), with the view's ttl.
--
-- KEYS[1] temporary key built by the rebuild
-- KEYS[2] live key
-- ARGV[1] ttl in seconds (0 = none)
redis.call('RENAME', KEYS[1], KEYS[2])
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[2])
end
return 1
