-- Records refreshes owed after a write-behind commit. The score packs a priority level and a due
-- time: level * 1e13 + due (ms). Claims take lower levels first, so the views a sink lists first are
-- refreshed first when refreshes cannot keep up. Marking an entry already there keeps the earlier due
-- time and the higher priority; marking an entry that is being refreshed (its due time is its lease
-- deadline, in the future) moves it back to now, so its release keeps it for one more run.
-- Every call takes the next mark sequence number: the entry's earliest uncovered mark is kept in the
-- pending zset (a run claimed after it covers it), and a mark made while a run holds the entry is
-- noted as its next (that run does not cover it). Waiters compare their seq with these.
--
-- KEYS[1] refresh backlog zset   {prefix}:sinks:refresh
-- KEYS[2] mark sequence          {prefix}:sinks:refresh:seq
-- KEYS[3] pending zset           {prefix}:sinks:refresh:pending
-- KEYS[4] claimed hash           {prefix}:sinks:refresh:claimed
-- KEYS[5] next hash              {prefix}:sinks:refresh:next
-- ARGV[1] now (ms)
-- ARGV[2], ARGV[3] … pairs of (level, member)
-- Returns the mark's sequence number.
local LEVEL = 1e13
local now = tonumber(ARGV[1])
local seq = redis.call('INCR', KEYS[2])
for i = 2, #ARGV, 2 do
  local level = tonumber(ARGV[i])
  local member = ARGV[i + 1]
  local current = redis.call('ZSCORE', KEYS[1], member)
  local score
  if current then
    current = tonumber(current)
    local currentLevel = math.floor(current / LEVEL)
    local due = current - currentLevel * LEVEL
    score = math.min(level, currentLevel) * LEVEL + math.min(now, due)
    if score == current then score = nil end
  else
    score = level * LEVEL + now
  end
  if score then
    redis.call('ZADD', KEYS[1], string.format('%.0f', score), member)
  end
  redis.call('ZADD', KEYS[3], 'NX', seq, member)
  if redis.call('HEXISTS', KEYS[4], member) == 1 then
    redis.call('HSETNX', KEYS[5], member, seq)
  end
end
return seq
