-- Starts a run of one or more (view, params) identities of one view, for the identities of one hash
-- slot (one call per slot on a Redis Cluster; one call in all on one server): refuses each identity
-- while another run holds its lock or while the coalescing window of its previous run is open, and
-- takes the lock of every other one. Each identity's lock and window share a slot (run-lock.ts).
-- The run's sequence is taken next, by take-seq.lua, once any lock was taken and before the query's
-- snapshot: a run with a higher sequence never saw older data than one with a lower sequence.
--
-- KEYS     per identity: its run lock {prefix}:lock:{identity}, its coalescing window {prefix}:window:{identity}
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- ARGV[3] '1' to ignore the coalescing window (scheduled runs are already paced by their schedule)
-- Returns {state1, ms1, state2, ms2, …}: state 0 = taken (ms 0); 1 = locked by another run;
-- 2 = inside the coalescing window; ms = how long that lasts.
local out = {}
for i = 1, #KEYS, 2 do
  local window = redis.call('PTTL', KEYS[i + 1])
  if window > 0 and ARGV[3] ~= '1' then
    out[#out + 1] = 2
    out[#out + 1] = window
  elseif not redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    local ttl = redis.call('PTTL', KEYS[i])
    out[#out + 1] = 1
    out[#out + 1] = ttl > 0 and ttl or 100
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
