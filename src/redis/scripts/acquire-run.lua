-- Starts a run of one or more (view, params) identities of one view: refuses each identity while
-- another run holds its lock or while the coalescing window of its previous run is open, and takes
-- the lock of every other one. Every identity taken shares one new sequence number, taken BEFORE the
-- query's snapshot, so a run with a higher sequence never saw older data than one with a lower
-- sequence: writes compare sequences to drop stale data.
--
-- If the metadata hash is gone (evicted, deleted) while the view's indexes remain, the sequence
-- continues above the highest one they recorded: restarting at 1 would make every write look older
-- than the data already there, and the view would stop changing.
--
-- KEYS[1] view metadata hash   {prefix}:view:{name}
-- KEYS[2] key index            {prefix}:view:{name}:keys    (hash and value views)
-- KEYS[3] member index         {prefix}:view:{name}:members (zset views)
-- then per identity: its run lock {prefix}:lock:{identity}, its coalescing window {prefix}:window:{identity}
-- ARGV[1] lock token
-- ARGV[2] lock ttl (ms)
-- ARGV[3] '1' to ignore the coalescing window (scheduled runs are already paced by their schedule)
-- Returns {seq, state1, ms1, state2, ms2, …}: state 0 = taken (ms 0); 1 = locked by another run;
-- 2 = inside the coalescing window; ms = how long that lasts. seq is 0 when nothing was taken.
local out = {0}
local taken = 0
for i = 4, #KEYS, 2 do
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
    taken = taken + 1
  end
end
if taken > 0 then
  if redis.call('HEXISTS', KEYS[1], 'seq') == 0 then
    local top = 0
    for k = 2, 3 do
      local last = redis.call('ZREVRANGE', KEYS[k], 0, 0, 'WITHSCORES')
      if last[2] and tonumber(last[2]) > top then top = tonumber(last[2]) end
    end
    if top > 0 then redis.call('HSET', KEYS[1], 'seq', string.format('%d', top)) end
  end
  out[1] = redis.call('HINCRBY', KEYS[1], 'seq', 1)
end
return out
