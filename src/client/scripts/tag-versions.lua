-- Reads tag versions that are not in the slot of the entry they guard (on a Redis Cluster the caller
-- sends one call per slot; see src/client/cache-store.ts). With ARGV[1] = '1' a missing version is
-- created from the server clock (ms), as cache-acquire.lua does: no entry is ever built under
-- version 0, which is what an evicted tag key reads as.
--
-- KEYS[1..]  tag versions   {prefix}:tag:{tag}   (all in one slot)
-- ARGV[1]    '1' to create missing versions, '0' to read only
-- Returns { version of each tag, or nil when missing and not created }.
local out = {}
local now
for i = 1, #KEYS do
  local version = redis.call('GET', KEYS[i])
  if not version and ARGV[1] == '1' then
    if not now then
      local time = redis.call('TIME')
      now = string.format('%.0f', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
    end
    redis.call('SET', KEYS[i], now)
    version = now
  end
  out[i] = version or false
end
return out
