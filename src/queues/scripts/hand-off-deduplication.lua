-- Gives up a chunked rebuild's BullMQ deduplication key before its parent job waits for its chunks,
-- unless a request arrived while the parent was active (then BullMQ's "next" key exists and the key
-- stays until that request is re-created). See queues/chunked-rebuild.ts.
--
-- KEYS[1] deduplication key        {prefix}:refresh:de:{deduplication id}   (BullMQ 6.7 layout)
-- KEYS[2] kept-next-request key    {prefix}:refresh:dn:{deduplication id}
-- ARGV[1] the parent job's id (the key is deleted only while it still names this job)
-- Returns 1 when the key was deleted, 0 otherwise.
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
