-- Redis Cluster: the release step of finish-run.lua and fail-run.lua for the identities of one slot:
-- opens each identity's coalescing window (finish only) and releases its lock if this run owns it.
--
-- KEYS     per identity: its run lock, its coalescing window
-- ARGV[1] lock token
-- ARGV[2] coalescing window (ms, 0 = none: a failed run opens no window)
-- Returns the number of locks released.
local released = 0
for i = 1, #KEYS, 2 do
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
  end
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    released = released + redis.call('DEL', KEYS[i])
  end
end
return released
