-- Invalidates a tag in O(1): bumps its version, so entries built under an older version are no longer
-- served — no index of keys, no SCAN. The version is at least the server clock (ms), so it keeps
-- increasing even if the tag key is evicted. Publishes the tag event on the channel and the capped
-- stream, like the daemon's view events.
--
-- On a Redis Cluster the stream is usually in another slot than the tag: then it is left out of KEYS
-- and the caller appends the returned event to it itself (src/client/cache-store.ts).
--
-- KEYS[1]  tag version     {prefix}:tag:{tag}
-- KEYS[2]  events stream   {prefix}:events   (optional)
-- ARGV[1]  tag
-- ARGV[2]  events channel  {prefix}:events
-- ARGV[3]  at (ISO-8601)
-- ARGV[4]  events stream max length (approximate)
-- Returns { new version, event JSON }.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local version = redis.call('INCR', KEYS[1])
if version < now then
  version = now
  redis.call('SET', KEYS[1], string.format('%.0f', now))
end
local event = '{"tag":' .. cjson.encode(ARGV[1]) .. ',"version":' .. string.format('%.0f', version) ..
  ',"at":"' .. ARGV[3] .. '"}'
redis.call('PUBLISH', ARGV[2], event)
if KEYS[2] then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', event)
end
return { version, event }
