-- Deletes one cached() entry and tells every process to drop its in-process copy.
--
-- KEYS[1]  entry   {prefix}:cache:{key}
-- ARGV[1]  events channel   {prefix}:events
-- ARGV[2]  key event JSON (no id: the entry is gone)
-- Returns the number of entries deleted (0 or 1).
local deleted = redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return deleted
