-- Deletes per-row keys whose rows a partial refresh found gone, unless a newer run wrote them. The
-- index keeps the entry (score = this sequence) as a tombstone so an older, slower run cannot bring
-- the key back; the next full rebuild clears it.
--
-- KEYS[1] key index zset
-- KEYS[2] view metadata hash ('floor')
-- ARGV[1] sequence of this run
-- ARGV[2 ..] keys
-- Returns the keys deleted, or -1 when the run is older than the floor.
local seq = tonumber(ARGV[1])
local floor = tonumber(redis.call('HGET', KEYS[2], 'floor') or '0')
if seq < floor then
  return -1
end
local deleted = {}
for i = 2, #ARGV do
  local current = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not current or tonumber(current) <= seq then
    redis.call('DEL', ARGV[i])
    redis.call('ZADD', KEYS[1], seq, ARGV[i])
    deleted[#deleted + 1] = ARGV[i]
  end
end
return deleted
