-- acquire.lua: decide one request for tokens, and record the grant when admitted.
-- KEYS: the common layout in lib.lua (state, in-flight, grants, classes..., granted...).
-- ARGV[1] now_ms or ""      ARGV[2] config JSON (lib.lua)
-- ARGV[3] class name        ARGV[4] cost (tokens, integer >= 1)
-- ARGV[5] "1" when the caller can sync from Keepa's /token, "0" otherwise
-- Returns an array (Redis converts it to a reply without a JSON round trip on either
-- side; every number in it is an integer):
--   {"granted", grant_id, granted_ms, balance, target}
--   {"refused", reason, wait_ms (-1 = only when others act), balance, target}
--   {"sync", why, kind}                         call /token first; kind 1: no state at
--                                               all, 0: stale, 2: the request would be
--                                               "impossible" at a rate only a reply named
--   {"impossible", why, target, capacity, confirm_wait_ms, balance}
--                                               no reachable balance admits this;
--                                               confirm_wait_ms -1, or, when the verdict
--                                               rests on a rate /token has not confirmed,
--                                               ms until a /token answer could be newer
--                                               than the applied one (>= 10 s: a stale or
--                                               failed /token is not asked again at once)
--   {"nostate"}                                 state missing and no way to sync
-- Units: tokens, unix ms.

local ctx = load(KEYS, ARGV)
local c = ctx.classes[ARGV[3]]
local cost = tonumber(ARGV[4])
local can_sync = ARGV[5] == '1'

if ctx.missing then
  if can_sync then
    return {'sync', 'no token state in Redis', 1}
  end
  return {'nostate'}
end

if can_sync then
  -- A rate that is no plan (0 or less) was ignored, or stored by older scripts: /token
  -- confirms Keepa's rate once, before anything rests on it.
  if ctx.rate_invalid then
    return {'sync', 'the stored refill rate is not a plan', 0}
  end
  if ctx.st.rate_check ~= nil then
    return {'sync', string.format('Keepa reported refillRate %s', ctx.st.rate_ignored), 0}
  end
end

local cap, floor = ctx.cap, ctx.cfg.floor
local function impossible_at(capacity)
  return floor + cost > capacity or c.cfg.threshold > capacity
end
-- Settings refuse a configuration impossible at the configured rate, so a request
-- possible there but not at Keepa's reported rate rests on that report: /token
-- confirms it before the caller is told "never" (a reply's rate may be wrong).
local unconfirmed = ctx.st.rate_confirmed == nil and not impossible_at(60 * ctx.cfg.plan_rate)
if impossible_at(cap) and can_sync and unconfirmed then
  return {'sync', string.format('confirm refillRate %d before refusing for good', ctx.rate), 2}
end
local confirm_wait = -1
if unconfirmed then
  confirm_wait = math.max(10000, num(ctx.st.server_ts_ms, 0) - ctx.now + 1)
end
if floor + cost > cap then
  return {'impossible',
    string.format('cost %d can never be admitted: capacity %d (60 x %d/min) minus the ' ..
      'deficit floor %d allows at most %d per call', cost, cap, ctx.rate, floor, cap - floor),
    floor + cost, cap, confirm_wait, ctx.est}
end
if c.cfg.threshold > cap then
  return {'impossible',
    string.format('TOKEN_THRESHOLD_%s=%d is above capacity %d (60 x %d/min): never reachable',
      string.upper(c.cfg.name), c.cfg.threshold, cap, ctx.rate),
    c.cfg.threshold, cap, confirm_wait, ctx.est}
end

if can_sync then
  local last_seen = num(ctx.st.last_seen_ms, 0)
  if ctx.now - last_seen > ctx.cfg.sync_interval_ms then
    return {'sync', 'no Keepa answer for too long', 0}
  end
  -- The oldest grant no sync has seen past the grant TTL: a sync sent at s has seen
  -- every grant older than s - TTL, and asking again would not settle those sooner
  -- (with its answer stale they stay subtracted until an applied answer drops them).
  local seen = num(ctx.st.sync_sent_ms)
  local from = seen and string.format('%d', seen - ctx.cfg.grant_ttl_ms) or '-inf'
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #oldest > 0 and tonumber(oldest[2]) + ctx.cfg.grant_ttl_ms < ctx.now then
    return {'sync', 'a grant was never settled', 0}
  end
end

update_recharge(ctx)
for i = 1, ctx.n do accrue(ctx, ctx.classes[i]) end

-- This class is asking now: it counts as waiting until it is granted.
set_cls(c, 'last_ask_ms', ctx.now)
set_cls(c, 'last_cost', cost)
if c.h.waiting_since_ms == nil then
  set_cls(c, 'waiting_since_ms', ctx.now)
  if c.cfg.share > 0 and num(c.h.credit_ms, 0) < ctx.now then set_cls(c, 'credit_ms', ctx.now) end
end

local ok, target, reason, wait = decide(ctx, c, cost)
if not ok then
  set_cls(c, 'last_reason', reason)
  set_cls(c, 'last_wait_ms', wait)
  set_cls(c, 'last_target', target)
  save(ctx)
  -- Redis truncates numbers to integers in a reply: a wait that is not finite (a refill
  -- rate of 0) would arrive as garbage, so it is sent as "only when others act".
  if wait ~= wait or wait == math.huge then wait = NEVER end
  return {'refused', reason, wait, ctx.est, target}
end

local id = grant_id(ctx, c, cost)
redis.call('ZADD', KEYS[2], ctx.now, id)
ctx.inflight_cost = ctx.inflight_cost + cost
set_st(ctx, 'inflight_cost', ctx.inflight_cost)
set_st(ctx, 'inflight_n', num(ctx.st.inflight_n, 0) + 1)
local before = ctx.est
ctx.est = ctx.est - cost
if c.cfg.share > 0 then
  set_cls(c, 'credit', string.format('%.6f', math.max(0, num(c.h.credit, 0) - cost)))
end
set_cls(c, 'waiting_since_ms', nil)
set_cls(c, 'last_reason', 'ok')
set_cls(c, 'last_wait_ms', 0)
add_granted(ctx, c, cost)
set_st(ctx, 'min_est', math.min(num(ctx.st.min_est, ctx.est), ctx.est))
update_recharge(ctx)
save(ctx)
return {'granted', id, ctx.now, before, target}
