-- Raises each identity's covered mark to a job-counter reading, never lowers it (runs of one
-- identity finish in any order). See queues/coverage.ts.
--
-- KEYS[1..n] covered marks     {prefix}:covered:{identity}
-- ARGV[1] job-counter reading taken before the run started (jobs numbered up to it are covered)
-- ARGV[2] lifetime of a mark (ms)
-- Returns 1.
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
end
return 1
