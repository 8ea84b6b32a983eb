-- Keeps a long run's lock alive, only if this run still owns it.
--
-- KEYS[1] run lock
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- Returns 1 when extended, 0 when the lock belongs to someone else (or expired).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
