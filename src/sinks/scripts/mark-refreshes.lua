-- Records refreshes owed after a write-behind commit. The score packs a priority level and a due
-- time: level * 1e13 + due (ms). Claims take lower levels first, so the views a sink lists first are
-- refreshed first when refreshes cannot keep up. Marking an entry already there keeps the earlier due
-- time and the higher priority; marking an entry that is being refreshed (its due time is its lease
-- deadline, in the future) moves it back to now, so its release keeps it for one more run.
--
-- KEYS[1] refresh backlog zset   {prefix}:sinks:refresh
-- ARGV[1] now (ms)
-- ARGV[2], ARGV[3] … pairs of (level, member)
-- Returns the number of entries added or changed.
local LEVEL = 1e13
local now = tonumber(ARGV[1])
local changed = 0
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
    changed = changed + 1
  end
end
return changed
