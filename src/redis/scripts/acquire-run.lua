-- Starts a run of one (view, params): refuses while another run holds the lock or while the
-- coalescing window of the previous run is open; otherwise takes the lock and a new sequence number.
-- The sequence is taken BEFORE the query's snapshot, so a run with a higher sequence never saw older
-- data than one with a lower sequence: writes compare sequences to drop stale data.
--
-- KEYS[1] view metadata hash   {prefix}:view:{name}
-- KEYS[2] run lock             {prefix}:lock:{identity}
-- KEYS[3] coalescing window    {prefix}:window:{identity}
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- ARGV[3] '1' to ignore the coalescing window (scheduled runs are already paced by their schedule)
-- Returns {0, seq} started; {1, ms} locked by another run; {2, ms} inside the coalescing window.
local window = redis.call('PTTL', KEYS[3])
if window > 0 and ARGV[3] ~= '1' then
  return {2, window}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[2])
  return {1, ttl > 0 and ttl or 100}
end
return {0, redis.call('HINCRBY', KEYS[1], 'seq', 1)}
