-- Reads a cached() entry and the current versions of the tags the caller names, in one round trip.
--
-- KEYS[1]    entry          {prefix}:cache:{key}
-- KEYS[2..]  tag versions   {prefix}:tag:{tag}
-- Returns { entry or nil, version of each tag or nil }.
local out = { redis.call('GET', KEYS[1]) }
for i = 2, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
