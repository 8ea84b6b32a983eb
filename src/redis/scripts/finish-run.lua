-- Ends a successful run in one step: bumps the view version, records metadata, publishes the
-- invalidation event on the channel and the capped stream, opens the coalescing window of every
-- identity the run covered and releases their locks.
--
-- KEYS[1] view metadata hash   {prefix}:view:{name}
-- KEYS[2] events stream        {prefix}:events (absent on a Redis Cluster, where the stream lives in
--                              another slot: the event is then returned and the caller appends it)
-- then per identity: its run lock, its coalescing window
-- ARGV[1] lock token
-- ARGV[2] coalescing window (ms, 0 = none)
-- ARGV[3] events channel       {prefix}:events
-- ARGV[4] finished at (ISO-8601)
-- ARGV[5] duration (ms)
-- ARGV[6] rows ('' = leave the recorded count alone)
-- ARGV[7] changed keys as a JSON array, or 'null' for the whole view
-- ARGV[8] view name
-- ARGV[9] events stream max length (approximate)
-- ARGV[10] run kind: 'full' | 'partial'
-- Returns the new version, or {version, event} when KEYS[2] is absent.
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'refreshed_at', ARGV[4], 'duration_ms', ARGV[5], 'last_error', '',
  'last_run', ARGV[10])
if ARGV[10] == 'full' then
  redis.call('HSET', KEYS[1], 'full_refreshed_at', ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'rows', ARGV[6])
end
local event = '{"view":' .. cjson.encode(ARGV[8]) .. ',"keys":' .. ARGV[7] .. ',"version":' .. version ..
  ',"at":"' .. ARGV[4] .. '"}'
redis.call('PUBLISH', ARGV[3], event)
if not KEYS[2] then
  return {version, event}
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'event', event)
for i = 3, #KEYS, 2 do
  if tonumber(ARGV[2]) > 0 then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
  end
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
return version
