-- Tries to take the single-flight lock of a cached() key and, in the same step, reads the entry and
-- the tag versions: a process that wins the lock just after another one stored a fresh value sees
-- that value and does not load again. Missing tag versions are created from the server clock (ms),
-- so no entry is ever built under version 0 — what a tag key reads as once it is evicted.
--
-- KEYS[1]    lock           {prefix}:cache-lock:{key}
-- KEYS[2]    entry          {prefix}:cache:{key}
-- KEYS[3..]  tag versions   {prefix}:tag:{tag}
-- ARGV[1]    lock token (random per load)
-- ARGV[2]    lock lifetime (ms)
-- Returns { 1 if the lock was taken else 0, entry or nil, version of each tag }.
local acquired = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  acquired = 1
end
local out = { acquired, redis.call('GET', KEYS[2]) }
if #KEYS >= 3 then
  local time = redis.call('TIME')
  local now = string.format('%.0f', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
  for i = 3, #KEYS do
    local version = redis.call('GET', KEYS[i])
    if not version then
      redis.call('SET', KEYS[i], now)
      version = now
    end
    out[i] = version
  end
end
return out
