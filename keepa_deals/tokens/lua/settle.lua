-- settle.lua: apply a Keepa response; with a grant id, also close that grant.
-- KEYS: the common layout in lib.lua.
-- ARGV[1] now_ms or ""      ARGV[2] config JSON (lib.lua)
-- ARGV[3] grant id, or "" for a response that had no grant (observe: /token, sync)
-- ARGV[4] tokensLeft or "" (no server values: a call that never reached Keepa)
-- ARGV[5] Keepa timestamp, unix ms (Keepa's clock: compared with other Keepa stamps, and
--         with our clock only to refuse one more than stamp_ahead_ms ahead of it)
-- ARGV[6] refillIn, ms      ARGV[7] refillRate, tokens/min
-- ARGV[8] tokensConsumed    ARGV[9] when the request was sent, unix ms on our clock, or ""
-- ARGV[10] without a grant: the grant number (state field seq) read before the request
--         was sent, or "". It orders the request against grants in its millisecond
--         of our clock; without it, and for a call's answer (a grant's number says
--         when it was granted, not when its call was sent), they count as made before.
-- Returns an array {applied, stale, known_grant, has_state, balance, warning}: the
-- first four are 1 or 0 (stale: it had server values that were not applied), balance
-- is the estimate in tokens (0 when has_state is 0), warning is "" or a line for the
-- caller to log. Each warning is given once, when the trouble it names begins,
-- whichever worker meets it (the state remembers it).
--
-- Which answer is applied. Keepa's stamps order its own work, so only a newer stamp
-- is applied; an older one never rolls state back. A newer value never erases grants
-- made after its request was sent (failure mode: lost updates between workers): those stay in flight, still subtracted.
-- An answer that is not applied may still hold a charge the applied number lacks; its
-- consumption is then held (lib.lua's hold()) until an answer sent after it arrived is
-- applied:
--   * stale (older stamp) and its grant was made after the applied answer's request
--     was sent: the applied number cannot include it;
--   * stamped more than stamp_ahead_ms ahead of our clock: the stamp is wrong (applied,
--     one such stamp made every correct answer after it stale), so it orders nothing;
--   * a newer stamp, but its request was sent before the applied answer's: Keepa ran it
--     after that one, whose number lacks it. Applying it instead could roll back a
--     charge when the newer stamp is the wrong one (a stamp behind or ahead within the
--     allowance).

local ctx = load(KEYS, ARGV)
local grant_id = ARGV[3]
local from_token = grant_id == ''
local has_server = ARGV[4] ~= ''
local consumed = num(ARGV[8], 0)
local sent_ms = num(ARGV[9])
local sent_seq = num(ARGV[10])
local known, granted_ms, granted_seq = false, nil, nil
local warnings = {}

-- Without state the set may still hold the grant (the state hash alone was lost).
if ctx.missing then ctx.inflight_cost = 0 end
if grant_id ~= '' then
  local cls, cost, g_ms, g_seq = drop_grant(ctx, grant_id)
  if cls then
    known = true
    local c = ctx.classes[cls]
    if c then add_granted(ctx, c, consumed - cost) end
    -- A grant from before ids carried a time: the caller's send time stands for it.
    granted_ms, granted_seq = g_ms or sent_ms, g_seq
    if sent_ms == nil then sent_ms = g_ms end
  end
end

local applied, stale = false, false
if has_server then
  local left, ts, rate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
  local applied_sent = num(ctx.st.sent_ms, 0)
  -- Keepa stamps an answer before it reaches us: a stamp ahead of our clock by more
  -- than the allowance is wrong (or one of the two clocks is).
  local ahead_ms = ts - ctx.now
  local too_far = ahead_ms > ctx.cfg.stamp_ahead_ms
  if too_far then
    set_st(ctx, 'stamps_ahead', num(ctx.st.stamps_ahead, 0) + 1)
    if ctx.st.ahead_warned == nil then
      set_st(ctx, 'ahead_warned', ctx.now)
      table.insert(warnings, string.format(
        "Keepa's timestamp %d is %d s ahead of our clock (more than %d s): %s; " ..
        'check the clock of the Redis host', ts, math.floor(ahead_ms / 1000),
        math.floor(ctx.cfg.stamp_ahead_ms / 1000),
        (ctx.missing and from_token)
          and 'applied as if stamped at the allowance (no state to compare with)'
          or 'not applied, what it consumed still counts'))
    end
    -- Applied only with no state: then stamped at the allowance, so that correct
    -- answers soon read as newer.
    ts = ctx.now + ctx.cfg.stamp_ahead_ms
  end
  local rate_ok = plan_rate_ok(rate)
  -- /token answers the confirmation acquire asked for after a rate that is no plan.
  if from_token and ctx.st.rate_check ~= nil then
    set_st(ctx, 'rate_check', nil)
    if not rate_ok then
      table.insert(warnings, string.format(
        "Keepa's /token also reports refillRate %s: keeping %d/min; " ..
        "check the key's subscription", ARGV[7], ctx.rate or ctx.cfg.plan_rate))
    end
  end
  -- Was a grant made after the applied answer's request was sent? By our clock, and in
  -- the same millisecond by the grant number when that request was a sync's (its
  -- number was read before sending). Otherwise a grant of that millisecond counts as
  -- made before: holding a charge the applied number includes would count it twice.
  local applied_seq = num(ctx.st.sent_seq)
  local function granted_after_applied(ms, seq)
    return ms > applied_sent or (ms == applied_sent and seq ~= nil and applied_seq ~= nil
      and seq > applied_seq)
  end
  local newer, held = false, false
  if ctx.missing then
    -- Only an answer without a grant (/token) rebuilds a lost state: a call's answer
    -- may be older than one applied before the state was lost, whose charges it lacks.
    -- The caller's next acquire syncs.
    newer = from_token
  elseif too_far then
    held = known
  else
    local last_ts = num(ctx.st.server_ts_ms, 0)
    -- Two answers stamped in the same millisecond cannot be ordered: keep the lower one,
    -- which is the later of them unless a refill fell inside that millisecond. At an
    -- equal balance the later arrival wins, so a plan change stamped in that
    -- millisecond is not lost.
    local by_stamp = ts > last_ts
      or (ts == last_ts and left <= num(ctx.st.keepa_left, ctx.balance))
    -- Sent before the applied request (in an earlier millisecond: within one, the
    -- order of two requests is unknown and the stamps decide).
    if by_stamp and (sent_ms == nil or sent_ms >= applied_sent) then
      newer = true
    elseif by_stamp then
      held = known
    else
      held = known and granted_ms ~= nil and granted_after_applied(granted_ms, granted_seq)
    end
  end
  if newer then
    applied = true
    local prev_rate = ctx.rate
    if not rate_ok then
      -- A rate of 0 or less is no plan (capacity 0 would refuse everything, for good):
      -- keep the last good rate, or the configured one, and let /token confirm.
      rate = ctx.missing and ctx.cfg.plan_rate or ctx.rate
      if ctx.st.rate_ignored == nil then
        set_st(ctx, 'rate_ignored', ARGV[7])
        if not from_token then set_st(ctx, 'rate_check', ctx.now) end
        table.insert(warnings, string.format(
          'Keepa reported refillRate %s: not a plan; keeping %d/min (%s) until an ' ..
          'answer reports a positive rate%s', ARGV[7], rate,
          ctx.missing and 'the configured KEEPA_PLAN_RATE' or 'the last good rate',
          from_token and '' or '; /token is asked to confirm'))
      end
      if ctx.missing then set_st(ctx, 'rate_confirmed', nil) end
    else
      set_st(ctx, 'rate_ignored', nil)
      set_st(ctx, 'rate_check', nil)
      -- An "impossible" verdict may rest on a rate only once /token has confirmed it.
      if from_token then
        set_st(ctx, 'rate_confirmed', '1')
      elseif ctx.missing or rate ~= prev_rate then
        set_st(ctx, 'rate_confirmed', nil)
      end
    end
    set_st(ctx, 'balance', left)
    set_st(ctx, 'keepa_left', left)
    set_st(ctx, 'server_ts_ms', ts)
    set_st(ctx, 'rate', rate)
    if not too_far then set_st(ctx, 'ahead_warned', nil) end
    -- The phase is placed from our clock at arrival: later than Keepa's real tick by
    -- the response latency, which only makes the estimate more cautious.
    set_st(ctx, 'next_tick_ms', ctx.now + tonumber(ARGV[6]))
    if sent_ms == nil then sent_ms = ctx.now - ctx.cfg.grant_ttl_ms end
    set_st(ctx, 'sent_ms', sent_ms)
    set_st(ctx, 'sent_seq', sent_seq)
    -- Grants whose request must have reached Keepa before this one was sent are now
    -- part of Keepa's number.
    local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', sent_ms - ctx.cfg.grant_ttl_ms)
    for _, id in ipairs(old) do drop_grant(ctx, id) end
    -- A sync (rare) also recounts the total from the set, whatever load() found.
    local top_seq = 0
    if from_token then top_seq = recount_inflight(ctx) end
    if ctx.missing then
      -- The state hash is gone but the set may not be (a key deleted or evicted alone):
      -- its grants are still in flight, so they stay subtracted. Numbering goes on past
      -- them and past this answer's own number, or a new grant in the same millisecond
      -- would reuse an id or read as made before this answer's request.
      set_st(ctx, 'seq', math.max(num(ctx.st.seq, 0), top_seq, sent_seq or 0))
    end
    ctx.missing = false
    ctx.rate_invalid = false
    ctx.rate = rate
    ctx.cap = 60 * ctx.rate
    ctx.balance = left
    ctx.next_tick = tonumber(ctx.st.next_tick_ms)
    ctx.high = math.min(ctx.cfg.high, ctx.cap)
    -- Held charges: part of this number only if its request was sent after the last of
    -- them arrived (a later millisecond: within one, the order is unknown); otherwise
    -- they stay subtracted from it.
    local held_tokens = num(ctx.st.held, 0)
    if held_tokens > 0 then
      if sent_ms > num(ctx.st.held_until_ms, 0) then
        set_st(ctx, 'held', nil)
        set_st(ctx, 'held_until_ms', nil)
      else
        rebase_less(ctx, held_tokens)
      end
    end
  elseif not ctx.missing then
    stale = true
    if held then hold(ctx, consumed) end
    -- A rate standing in for one Keepa did not give (stored as 0 by older scripts,
    -- or the configured one after a rate that is no plan) gives way to the rate of a
    -- /token answer even when its balance is stale: the rate is what /token was asked
    -- to confirm, and it is fresh.
    if from_token and (ctx.rate_invalid or ctx.st.rate_ignored ~= nil) then
      if rate_ok then
        set_st(ctx, 'rate', rate)
        set_st(ctx, 'rate_ignored', nil)
        set_st(ctx, 'rate_confirmed', '1')
        ctx.rate, ctx.cap = rate, 60 * rate
        ctx.high = math.min(ctx.cfg.high, ctx.cap)
      elseif ctx.rate_invalid then
        -- /token names no plan either: the configured rate is stored, so acquire does
        -- not ask again; an "impossible" verdict cannot rest on it.
        set_st(ctx, 'rate', ctx.rate)
        set_st(ctx, 'rate_confirmed', nil)
      end
    end
  end
  -- A sync has seen every grant older than the grant TTL at its sending: acquire does
  -- not ask /token again for those, even when this answer was stale.
  if from_token and ARGV[9] ~= '' then
    set_st(ctx, 'sync_sent_ms', math.max(num(ctx.st.sync_sent_ms, 0), tonumber(ARGV[9])))
  end
  set_st(ctx, 'last_seen_ms', ctx.now)
  if left <= 0 then set_st(ctx, 'last_empty_ms', ctx.now) end
end

if not ctx.missing then
  refresh_estimate(ctx)
  -- With calls in flight or charges held the estimate may count a charge twice
  -- (Keepa's newer number can include it): only a settled estimate is a true low.
  if ctx.inflight_cost == 0 and num(ctx.st.held, 0) == 0 then
    set_st(ctx, 'min_est', math.min(num(ctx.st.min_est, ctx.est), ctx.est))
  end
  update_recharge(ctx)
end
save(ctx)
local function flag(b) return b and 1 or 0 end
return {flag(applied), flag(stale), flag(known), flag(not ctx.missing),
  ctx.missing and 0 or ctx.est, table.concat(warnings, '; ')}
