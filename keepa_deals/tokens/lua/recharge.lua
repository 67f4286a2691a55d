-- recharge.lua: an operator's pause (recharge on by hand) or resume (recharge off),
-- applied in the same atomic step as the check that token state exists. Two separate
-- commands could land between a FLUSHALL and the next sync and leave a state hash
-- holding only recharge fields, which every script would then misread.
-- KEYS: the common layout in lib.lua (only KEYS[1], the state hash, is written).
-- ARGV[1] now_ms or ""      ARGV[2] config JSON (lib.lua)      ARGV[3] "1" pause, "0" resume
-- Returns 1 when applied, 0 when there is no token state (nothing to pause or resume).
-- Units: unix ms. A resume blocks automatic re-entry for timeout_ms, as a timeout does.

local ctx = load(KEYS, ARGV)
if ctx.missing then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'rc_active', 1, 'rc_manual', 1, 'rc_since_ms', ctx.now)
else
  redis.call('HSET', KEYS[1], 'rc_active', 0, 'rc_last_exit', 'manual',
    'rc_block_until_ms', ctx.now + ctx.cfg.timeout_ms)
  redis.call('HDEL', KEYS[1], 'rc_manual')
end
return 1
