-- release.lua: delete a task lock, only for its owner (failure mode "stuck locks": never a live lock
-- that someone else holds).
-- KEYS[1] the lock key
-- ARGV[1] owner token
-- Returns 1 when released, 0 when it was not ours (expired and taken, or gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
