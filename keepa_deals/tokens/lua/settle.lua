-- settle.lua: apply a Keepa response; with a grant id, also close that grant.
-- KEYS: the common layout in lib.lua.
-- ARGV[1] now_ms or ""      ARGV[2] config JSON (lib.lua)
-- ARGV[3] grant id, or "" for a response that had no grant (observe: /token, sync)
-- ARGV[4] tokensLeft or "" (no server values: a call that never reached Keepa)
-- ARGV[5] Keepa timestamp, unix ms (Keepa's clock: compared only with other Keepa stamps)
-- ARGV[6] refillIn, ms      ARGV[7] refillRate, tokens/min
-- ARGV[8] tokensConsumed    ARGV[9] when the request was sent, unix ms on our clock, or ""
-- Returns an array of integers {applied, stale, known_grant, has_state, balance}: the
-- flags are 1 or 0, balance is the estimate (0 when has_state is 0).
-- Only the newest Keepa value wins: an older timestamp never rolls state back. A newer
-- value never erases grants made after its request was sent (failure mode: lost updates between workers): those stay in
-- flight and are still subtracted from the estimate.

local ctx = load(KEYS, ARGV)
local grant_id = ARGV[3]
local has_server = ARGV[4] ~= ''
local consumed = num(ARGV[8], 0)
local sent_ms = num(ARGV[9])
local known = false

if grant_id ~= '' and not ctx.missing then
  local cls, cost, granted_ms = drop_grant(ctx, grant_id)
  if cls then
    known = true
    local c = ctx.classes[cls]
    if c then add_granted(ctx, c, consumed - cost) end
    if sent_ms == nil then sent_ms = granted_ms end
  end
end

local applied, stale = false, false
if has_server then
  local ts = tonumber(ARGV[5])
  local last_ts = num(ctx.st.server_ts_ms, 0)
  -- Two answers stamped in the same millisecond cannot be ordered: keep the lower one,
  -- which is the later of them unless a refill fell inside that millisecond. At an
  -- equal balance the later arrival wins, so a plan change stamped in that
  -- millisecond is not lost.
  local newer = ts > last_ts or (ts == last_ts and tonumber(ARGV[4]) <= ctx.balance)
  if ctx.missing or newer then
    applied = true
    set_st(ctx, 'balance', tonumber(ARGV[4]))
    set_st(ctx, 'server_ts_ms', ts)
    set_st(ctx, 'rate', tonumber(ARGV[7]))
    -- The phase is placed from our clock at arrival: later than Keepa's real tick by
    -- the response latency, which only makes the estimate more cautious.
    set_st(ctx, 'next_tick_ms', ctx.now + tonumber(ARGV[6]))
    if sent_ms == nil then sent_ms = ctx.now - ctx.cfg.grant_ttl_ms end
    set_st(ctx, 'sent_ms', sent_ms)
    if ctx.missing then
      set_st(ctx, 'inflight_cost', 0)
      redis.call('DEL', KEYS[2], KEYS[3])
    end
    -- Grants whose request must have reached Keepa before this one was sent are now
    -- part of Keepa's number.
    ctx.inflight_cost = num(ctx.st.inflight_cost, 0)
    local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', sent_ms - ctx.cfg.grant_ttl_ms)
    for _, id in ipairs(old) do drop_grant(ctx, id) end
    ctx.missing = false
    ctx.rate = tonumber(ARGV[7])
    ctx.cap = 60 * ctx.rate
    ctx.balance = tonumber(ARGV[4])
    ctx.next_tick = tonumber(ctx.st.next_tick_ms)
    ctx.high = math.min(ctx.cfg.high, ctx.cap)
  else
    stale = true
  end
  set_st(ctx, 'last_seen_ms', ctx.now)
  if tonumber(ARGV[4]) <= 0 then set_st(ctx, 'last_empty_ms', ctx.now) end
end

if not ctx.missing then
  refresh_estimate(ctx)
  -- With calls in flight the estimate may count a charge twice (Keepa's newer number
  -- can include a grant still subtracted): only a settled estimate is a true low.
  if ctx.inflight_cost == 0 then
    set_st(ctx, 'min_est', math.min(num(ctx.st.min_est, ctx.est), ctx.est))
  end
  update_recharge(ctx)
end
save(ctx)
local function flag(b) return b and 1 or 0 end
return {flag(applied), flag(stale), flag(known), flag(not ctx.missing),
  ctx.missing and 0 or ctx.est}
