-- status.lua: a read-only snapshot of the budget, computed by the same policy code.
-- KEYS: the common layout in lib.lua.
-- ARGV[1] now_ms or ""      ARGV[2] config JSON (lib.lua)
-- Returns JSON: {missing} or {now_ms, balance, server_balance, server_ts_ms, last_seen_ms,
--   rate, capacity, floor, inflight, inflight_cost, held, rate_ignored, stamps_ahead,
--   recharge{...}, classes{name: {...}}}.
-- Waits are ms (-1 = only when others act); claims are tokens; nothing is written.
-- server_balance is Keepa's last applied tokensLeft; balance, the estimate, also counts
-- `held`: tokens that answers not applied said they consumed, kept until an answer sent
-- after them is applied (settle.lua). rate_ignored is a refillRate Keepa reported that
-- is no plan (null once a positive one is applied); stamps_ahead counts the answers
-- refused for a timestamp too far ahead of our clock.
-- Every number is finite: cjson cannot encode infinity, and a status that fails is
-- read as "Redis unreachable" by whoever asked.

local ctx = load(KEYS, ARGV)
if ctx.missing then return cjson.encode({missing = true, now_ms = ctx.now}) end

local function finite(ms)
  if ms ~= ms or ms == math.huge or ms == -math.huge then return NEVER end
  return ms
end
update_recharge(ctx)
for i = 1, ctx.n do accrue(ctx, ctx.classes[i]) end

local classes = {}
for i = 1, ctx.n do
  local c = ctx.classes[i]
  local cost = num(c.h.last_cost, 1)
  local waiting = is_waiting(ctx, c)
  local entry = {
    threshold = c.cfg.threshold, priority = c.cfg.priority, share = c.cfg.share,
    gated = c.cfg.gated, waiting = waiting, last_cost = cost,
    waiting_since_ms = waiting and num(c.h.waiting_since_ms) or cjson.null,
    credit = num(c.h.credit, 0),
    starvation_bound_ms = finite(bound_ms(ctx, c, cost)),
    granted_last_hour = granted_last_hour(ctx, i),
    granted_total = num(c.h.granted_total, 0),
  }
  -- The largest cost that would be granted now (decide is monotone in the cost).
  local lo, hi = 0, ctx.cap - ctx.cfg.floor
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if decide(ctx, c, mid) then lo = mid else hi = mid - 1 end
  end
  entry.admissible = lo
  -- An entitled class that asked lately holds the balance its credit stands for, even
  -- between asks (claims_now): shown, or another class's yield_to_share has no visible
  -- cause.
  local holds = entitled(c, cost) and claims_now(ctx, c, cost)
  entry.claim = holds and claim(ctx, c, cost) or cjson.null
  if waiting then
    local ok, target, reason, wait = decide(ctx, c, cost)
    entry.reason, entry.wait_ms, entry.target = reason, ok and 0 or finite(wait), target
  elseif holds then
    entry.reason, entry.wait_ms, entry.target = 'holds_claim', 0, entry.claim
  else
    entry.reason, entry.wait_ms, entry.target = 'idle', 0, cjson.null
  end
  classes[c.cfg.name] = entry
end

local rc_active = ctx.st.rc_active == '1'
local since = num(ctx.st.rc_since_ms)
return cjson.encode({
  now_ms = ctx.now, balance = ctx.est, server_balance = num(ctx.st.keepa_left, ctx.balance),
  server_ts_ms = num(ctx.st.server_ts_ms), last_seen_ms = num(ctx.st.last_seen_ms),
  rate = ctx.rate, capacity = ctx.cap, floor = ctx.cfg.floor, min_balance = num(ctx.st.min_est),
  inflight = redis.call('ZCARD', KEYS[2]), inflight_cost = ctx.inflight_cost,
  held = num(ctx.st.held, 0),
  rate_ignored = num(ctx.st.rate_ignored) or cjson.null,
  stamps_ahead = num(ctx.st.stamps_ahead, 0),
  next_tick_ms = ctx.next_tick + ticks_through(ctx, ctx.now) * TICK_MS,
  recharge = {
    active = rc_active, since_ms = rc_active and since or cjson.null,
    target = ctx.high, low = ctx.cfg.low,
    timeout_at_ms = rc_active and (since + ctx.cfg.timeout_ms) or cjson.null,
    blocked_until_ms = num(ctx.st.rc_block_until_ms), last_exit = ctx.st.rc_last_exit or cjson.null,
    entries = num(ctx.st.rc_entries, 0),
  },
  classes = classes,
})
