-- Incremental append to list views (the caching guide's LPUSH + LTRIM): pushes one element onto the
-- head of each named group's list and trims it to the view's length, in one step per call. Only for
-- newest-first lists, only onto a list that is there (a missing list is unknown, not empty: it may
-- have expired or been evicted, and one element would pass for the whole group), and only when the
-- element belongs at the head: its order key must not be below the current head's. Anything else is
-- refused and named, and the caller refreshes that group from the database instead.
--
-- An element already in the list is not pushed again: a write-behind batch redelivered after a
-- crash appends the same elements twice.
--
-- The call takes a new sequence of the view (as take-seq.lua does for a run) and indexes every
-- group it changed with it, so a rebuild that started earlier skips those groups instead of
-- writing a snapshot that lacks the element, and its sweep leaves them alone.
--
-- KEYS[1] key index zset       {prefix}:view:{name}:keys
-- KEYS[2] view metadata hash   ('seq'; on a Redis Cluster the slot's floor hash, unused: the
--                              metadata is in another slot and the caller takes the sequence)
-- KEYS[3] list heads hash      {prefix}:view:{name}:heads
-- ARGV[1] ttl in seconds (0 = none)
-- ARGV[2] the view's maxLength
-- ARGV[3] the sequence to index with, taken by the caller (cluster), or '' to take one here
-- then triples: group key, order key of the element, element
-- Returns {appended, refused key, ...}.
local seq = tonumber(ARGV[3])
if not seq then
  if redis.call('HEXISTS', KEYS[2], 'seq') == 0 then
    local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if last[2] then redis.call('HSET', KEYS[2], 'seq', last[2]) end
  end
  seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
end
local ttl = tonumber(ARGV[1])
local maxLength = tonumber(ARGV[2])
local out = {0}
for i = 4, #ARGV, 3 do
  local key = ARGV[i]
  local order = ARGV[i + 1]
  local element = ARGV[i + 2]
  if not redis.call('LPOS', key, element) then
    local head = redis.call('HGET', KEYS[3], key)
    if redis.call('EXISTS', key) == 0 or (head and order < head) then
      out[#out + 1] = key
    else
      redis.call('LPUSH', key, element)
      redis.call('LTRIM', key, 0, maxLength - 1)
      redis.call('HSET', KEYS[3], key, order)
      redis.call('ZADD', KEYS[1], seq, key)
      if ttl > 0 then
        redis.call('EXPIRE', key, ttl)
      end
      out[1] = out[1] + 1
    end
  end
end
return out
