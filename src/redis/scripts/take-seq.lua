-- Takes a new sequence of a view: for a run (after take-locks.lua) and, on a Redis Cluster, for an
-- append (append-list.lua takes its own on one server). If the metadata hash lost its 'seq'
-- (evicted, deleted) while the view's indexes remain, the sequence continues above the highest one
-- they recorded: restarting at 1 would make every write look older than the data already there, and
-- the view would stop changing. The indexes may live in other slots, out of this script's reach, so
-- the caller reads them and passes their top; it does so only when this script says it must.
--
-- KEYS[1] view metadata hash   {prefix}:view:{name}
-- ARGV[1] highest sequence found in the indexes, or '' when not looked up yet
-- Returns the new sequence, or -1 when 'seq' is missing and ARGV[1] is ''.
if redis.call('HEXISTS', KEYS[1], 'seq') == 0 then
  if ARGV[1] == '' then
    return -1
  end
  if tonumber(ARGV[1]) > 0 then
    redis.call('HSET', KEYS[1], 'seq', ARGV[1])
  end
end
return redis.call('HINCRBY', KEYS[1], 'seq', 1)
