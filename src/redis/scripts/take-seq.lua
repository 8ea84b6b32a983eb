-- Redis Cluster: takes a new sequence of a view (acquire-run.lua's last step, and append-list.lua's
-- first on one server). If the metadata hash lost its 'seq' while the view's per-slot indexes remain,
-- the caller reads the highest sequence they recorded and passes it (they live in other slots, out
-- of this script's reach), and the sequence continues above it.
--
-- KEYS[1] view metadata hash   {prefix}:view:{name}
-- ARGV[1] highest sequence found in the indexes, or '' when not looked up yet
-- Returns the new sequence, or -1 when 'seq' is missing and ARGV[1] is ''.
if redis.call('HEXISTS', KEYS[1], 'seq') == 0 then
  if ARGV[1] == '' then
    return -1
  end
  redis.call('HSET', KEYS[1], 'seq', ARGV[1])
end
return redis.call('HINCRBY', KEYS[1], 'seq', 1)
