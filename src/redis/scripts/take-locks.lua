-- Redis Cluster: the lock step of acquire-run.lua for the identities of one slot (each identity's
-- lock and coalescing window share a slot, placed by run-lock.ts). The sequence is taken afterwards,
-- by take-seq.lua on the metadata hash — still before the query's snapshot, which is all a sequence
-- needs (a run with a higher sequence never saw older data).
--
-- KEYS     per identity: its run lock, its coalescing window
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- ARGV[3] '1' to ignore the coalescing window
-- Returns {state1, ms1, state2, ms2, …} with acquire-run.lua's states.
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
