-- Partial refresh of a zset view: sets or removes members in the live key, skipping members a newer
-- run already wrote. The member index remembers the sequence of each write so a full rebuild that
-- started earlier can carry these newer values over when it swaps in.
--
-- KEYS[1] live zset
-- KEYS[2] member index zset    {prefix}:view:{name}:members
-- KEYS[3] view metadata hash ('floor')
-- ARGV[1] sequence of this run
-- ARGV[2] ttl in seconds (0 = none)
-- then pairs: member, score ('' = remove the member)
-- Returns the number of members changed, or -1 when the run is older than the floor.
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[3], 'floor') or '0')
if seq < floor then
  return -1
end
local changed = 0
for i = 3, #ARGV, 2 do
  local member = ARGV[i]
  local current = redis.call('ZSCORE', KEYS[2], member)
  if not current or tonumber(current) <= seq then
    if ARGV[i + 1] == '' then
      redis.call('ZREM', KEYS[1], member)
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 1], member)
    end
    redis.call('ZADD', KEYS[2], seq, member)
    changed = changed + 1
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 and changed > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return changed
