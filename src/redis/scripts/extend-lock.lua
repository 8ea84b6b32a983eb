-- Keeps a long run's locks alive, each only if this run still owns it.
--
-- KEYS     the run's locks
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- Returns how many locks were extended (fewer: some belong to someone else, or expired).
local extended = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    extended = extended + redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return extended
