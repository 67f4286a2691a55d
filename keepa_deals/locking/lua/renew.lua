-- renew.lua: extend a task lock, only for its owner.
-- KEYS[1] the lock key
-- ARGV[1] owner token (host:pid:random)   ARGV[2] new TTL, milliseconds
-- Returns 1 when renewed, 0 when the lock is gone or held by someone else: the caller
-- has lost it and must stop.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
