-- Claims due entries of the write-behind refresh backlog, lowest priority level first; each claimed
-- entry's due time becomes its lease deadline, so another daemon takes it over only if this one dies
-- before releasing it. Score = level * 1e13 + due (ms); see mark-refreshes.lua.
--
-- The claim also records the mark sequence it covers (every mark made before it) and forgets the
-- marks noted as made during an earlier run, which this run covers too.
--
-- KEYS[1] refresh backlog zset   {prefix}:sinks:refresh
-- KEYS[2] mark sequence          {prefix}:sinks:refresh:seq
-- KEYS[3] claimed hash           {prefix}:sinks:refresh:claimed
-- KEYS[4] next hash              {prefix}:sinks:refresh:next
-- ARGV[1] now (ms)
-- ARGV[2] lease (ms)
-- ARGV[3] most entries to claim
-- ARGV[4] number of levels
-- Returns {member1, leaseScore1, member2, leaseScore2, …}, or, when nothing is due, {'', msUntilNextDue}
-- (-1 when the backlog is empty).
local LEVEL = 1e13
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local out = {}
local claimed = 0
local seq = redis.call('GET', KEYS[2]) or '0'
for level = 0, tonumber(ARGV[4]) - 1 do
  if claimed >= max then break end
  local base = level * LEVEL
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%.0f', base), string.format('%.0f', base + now),
    'LIMIT', 0, max - claimed)
  local leased = string.format('%.0f', base + now + lease)
  for i = 1, #due do
    redis.call('ZADD', KEYS[1], 'XX', leased, due[i])
    redis.call('HSET', KEYS[3], due[i], seq)
    redis.call('HDEL', KEYS[4], due[i])
    out[#out + 1] = due[i]
    out[#out + 1] = leased
    claimed = claimed + 1
  end
end
if claimed > 0 then return out end
local nextDue = -1
for level = 0, tonumber(ARGV[4]) - 1 do
  local base = level * LEVEL
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%.0f', base),
    string.format('%.0f', base + LEVEL - 1), 'WITHSCORES', 'LIMIT', 0, 1)
  if #first > 0 then
    local wait = tonumber(first[2]) - base - now
    if nextDue < 0 or wait < nextDue then nextDue = math.max(0, wait) end
  end
end
return {'', string.format('%.0f', nextDue)}
