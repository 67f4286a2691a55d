-- lib.lua: the token policy, shared by acquire.lua, settle.lua and status.lua.
-- It is prepended to each of them when they are registered; it is not run alone.
--
-- Common KEYS layout (n = number of classes in the config):
--   KEYS[1]            state hash   (server balance, refill phase, recharge, counters)
--   KEYS[2]            in-flight zset   (grant id "<granted_ms>.<seq>|<class>|<cost>" -> granted_ms)
--   KEYS[3]            grants hash      (legacy: id -> "class|cost" for grants made before
--                                        ids carried both; only read, to settle those)
--   KEYS[3+i]          class i hash     (waiting, credit, last refusal)
--   KEYS[3+n+i]        class i granted-per-minute hash (minute index -> tokens)
-- Common ARGV:
--   ARGV[1]  now in unix ms, or "" to read the Redis server's TIME (one clock for all hosts)
--   ARGV[2]  config JSON: {floor, low, high, timeout_ms, grant_ttl_ms, demand_ttl_ms,
--            sync_interval_ms, plan_rate, stamp_ahead_ms,
--            classes: [{name, priority, threshold, share, gated}]}
--            plan_rate (tokens/min) is the configured rate (KEEPA_PLAN_RATE): the rate used
--            while Keepa has named none that can be a plan (0 or less). stamp_ahead_ms is
--            how far ahead of our clock a Keepa timestamp may be and still be applied.
-- Units: tokens are integers (credit is fractional), times are unix milliseconds,
-- rates are tokens per minute. Keepa refills in one tick a minute.

local TICK_MS = 60000
local NEVER = -1

local function now_ms(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function num(v, default)
  if v == nil or v == false or v == '' then return default end
  return tonumber(v)
end

-- Number of refill ticks at times <= t.
local function ticks_through(ctx, t)
  local first = ctx.next_tick
  if t < first then return 0 end
  return math.floor((t - first) / TICK_MS) + 1
end

-- Keepa's balance now: the last server value plus the ticks since, capped at capacity.
-- This is a lower bound of the true balance (capping never loses more than min() does).
local function project(ctx)
  local k = ticks_through(ctx, ctx.now)
  return math.min(ctx.cap, ctx.balance + k * ctx.rate)
end

-- Milliseconds from now until the estimate reaches `target`, if nothing else happens.
local function time_to(ctx, target)
  if target > ctx.cap then return NEVER end
  local need = target - ctx.est
  if need <= 0 then return 0 end
  local k = math.ceil(need / ctx.rate)
  local next_tick = ctx.next_tick + ticks_through(ctx, ctx.now) * TICK_MS
  return next_tick + (k - 1) * TICK_MS - ctx.now
end

local function min_wait(a, b)
  if a == NEVER then return b end
  if b == NEVER then return a end
  return math.min(a, b)
end

local function max_wait(a, b)
  if a == NEVER or b == NEVER then return NEVER end
  return math.max(a, b)
end

local function set_st(ctx, field, value)
  ctx.st[field] = value
  ctx.st_dirty[field] = true
end

-- A refill rate that can be a plan: a number above 0. Keepa has answered 0; a rate of 0
-- makes capacity 0 (every request "impossible") and every wait infinite.
local function plan_rate_ok(rate)
  return rate ~= nil and rate > 0 and rate < math.huge
end

-- A grant's class, cost, granted_ms and sequence number from its id. A grant made
-- before ids carried their class and cost (an upgrade with calls in flight) has its
-- record in the grants hash, and no time. Without a record (only if that hash was
-- deleted by hand) there is nothing known to subtract, as with the old scripts: nil.
local function grant_record(ctx, id)
  local granted_ms, seq, cls, cost = string.match(id, '^(%d+)%.(%d+)|([^|]+)|(%d+)$')
  if cls == nil then
    local g = redis.call('HGET', ctx.keys[3], id)
    if not g then return nil end
    cls, cost = string.match(g, '^([^|]+)|(%d+)$')
    if cls == nil then return nil end
  end
  return cls, tonumber(cost), tonumber(granted_ms), tonumber(seq)
end

-- The in-flight total and count, recounted from the set: the set is the record, the
-- total only its sum. O(grants in flight): load() calls it only when the set's size
-- and the count disagree (the set deleted or evicted, a member removed by hand), and
-- settle.lua when a sync is applied. Returns the highest grant number in the set.
local function recount_inflight(ctx)
  local ids = redis.call('ZRANGE', ctx.keys[2], 0, -1)
  local total, top_seq = 0, 0
  for _, id in ipairs(ids) do
    local cls, cost, _, seq = grant_record(ctx, id)
    if cls ~= nil then total = total + cost end
    if seq ~= nil and seq > top_seq then top_seq = seq end
  end
  ctx.inflight_cost = total
  set_st(ctx, 'inflight_cost', total)
  set_st(ctx, 'inflight_n', #ids)
  return top_seq
end

local function load(keys, argv)
  local cfg = cjson.decode(argv[2])
  local ctx = {cfg = cfg, now = now_ms(argv[1]), keys = keys, n = #cfg.classes}
  ctx.st = hgetall(keys[1])
  ctx.st_dirty = {}
  ctx.classes = {}
  for i = 1, ctx.n do
    local c = cfg.classes[i]
    ctx.classes[i] = {cfg = c, h = hgetall(keys[3 + i]), dirty = {}, idx = i}
    ctx.classes[c.name] = ctx.classes[i]
  end
  -- Missing unless Keepa's number, its phase and a rate are all there: a hash with
  -- only some fields (an answer's bookkeeping while no state was rebuilt, a field
  -- deleted by hand) is rebuilt from /token like no hash at all.
  ctx.balance = tonumber(ctx.st.balance)
  ctx.next_tick = tonumber(ctx.st.next_tick_ms)
  if ctx.st.rate == nil or ctx.balance == nil or ctx.next_tick == nil then
    ctx.missing = true
    return ctx
  end
  ctx.rate = tonumber(ctx.st.rate)
  if not plan_rate_ok(ctx.rate) then
    -- Only the scripts before 2026-12-08 stored such a rate. Decide on the configured
    -- one; acquire asks /token for Keepa's.
    ctx.rate = cfg.plan_rate
    ctx.rate_invalid = true
  end
  ctx.cap = 60 * ctx.rate
  ctx.inflight_cost = num(ctx.st.inflight_cost, 0)
  -- One ZCARD a call keeps the total true to the set: after `DEL tokens:inflight` a
  -- total that moved only by +-cost kept the estimate low for good (issue 10).
  if redis.call('ZCARD', keys[2]) ~= num(ctx.st.inflight_n, -1) then
    recount_inflight(ctx)
  end
  ctx.est = project(ctx) - ctx.inflight_cost
  ctx.high = math.min(cfg.high, ctx.cap)
  return ctx
end

local function set_cls(c, field, value)
  c.h[field] = value
  c.dirty[field] = true
end

local function save(ctx)
  local args, dels = {}, {}
  for f, _ in pairs(ctx.st_dirty) do
    if ctx.st[f] == nil then table.insert(dels, f)
    else table.insert(args, f); table.insert(args, tostring(ctx.st[f])) end
  end
  if #args > 0 then redis.call('HSET', ctx.keys[1], unpack(args)) end
  if #dels > 0 then redis.call('HDEL', ctx.keys[1], unpack(dels)) end
  for i = 1, ctx.n do
    local c = ctx.classes[i]
    local cargs, cdels = {}, {}
    for f, _ in pairs(c.dirty) do
      if c.h[f] == nil then table.insert(cdels, f)
      else table.insert(cargs, f); table.insert(cargs, tostring(c.h[f])) end
    end
    if #cargs > 0 then redis.call('HSET', ctx.keys[3 + i], unpack(cargs)) end
    if #cdels > 0 then redis.call('HDEL', ctx.keys[3 + i], unpack(cdels)) end
  end
end

-- Recharge: below `low` gated classes pause until `high` or until the timeout. Leaving
-- by timeout blocks re-arming for another timeout, so the release is real progress
-- instead of an immediate re-entry (failure mode: recharge with no exit).
local function update_recharge(ctx)
  local active = ctx.st.rc_active == '1'
  if active then
    local since = num(ctx.st.rc_since_ms, ctx.now)
    -- An operator's pause (rc_manual) ends only by resume or by the timeout.
    if ctx.est >= ctx.high and ctx.st.rc_manual ~= '1' then
      set_st(ctx, 'rc_active', '0')
      set_st(ctx, 'rc_last_exit', 'refilled')
    elseif ctx.now >= since + ctx.cfg.timeout_ms then
      set_st(ctx, 'rc_active', '0')
      set_st(ctx, 'rc_manual', nil)
      set_st(ctx, 'rc_last_exit', 'timeout')
      set_st(ctx, 'rc_block_until_ms', ctx.now + ctx.cfg.timeout_ms)
    end
  elseif ctx.est < ctx.cfg.low and ctx.now >= num(ctx.st.rc_block_until_ms, 0) then
    set_st(ctx, 'rc_active', '1')
    set_st(ctx, 'rc_since_ms', ctx.now)
    set_st(ctx, 'rc_entries', num(ctx.st.rc_entries, 0) + 1)
  end
end

local function asked_lately(ctx, c)
  local last = num(c.h.last_ask_ms)
  return last ~= nil and ctx.now - last <= ctx.cfg.demand_ttl_ms
end

local function is_waiting(ctx, c)
  return c.h.waiting_since_ms ~= nil and asked_lately(ctx, c)
end

-- The lowest starting balance any request of `cost` needs. Hard stop: Keepa answers 429
-- at a balance <= 0. Deficit: the result stays >= the floor.
local function hard_target(ctx, cost)
  return math.max(1, ctx.cfg.floor + cost)
end

-- Credit needed to carry one request of `cost` through its worst-case recovery, so a
-- class that keeps asking never loses credit it is owed while it waits for the floor.
local function credit_cap(ctx, c, cost)
  local share = c.cfg.share
  if share <= 0 then return 0 end
  local f = ctx.cfg.floor
  local recovery_ticks = math.ceil((hard_target(ctx, cost) - f) / ctx.rate) + 1
  return cost + share * ctx.rate * recovery_ticks
end

-- A waiting class with a share accrues credit at share x rate while it keeps asking.
local function accrue(ctx, c)
  local since = num(c.h.waiting_since_ms)
  if since == nil then return end
  local last_ask = num(c.h.last_ask_ms, since)
  local upto = ctx.now
  local expired = ctx.now - last_ask > ctx.cfg.demand_ttl_ms
  if expired then upto = last_ask + ctx.cfg.demand_ttl_ms end
  if c.cfg.share > 0 then
    local from = num(c.h.credit_ms, since)
    if upto > from then
      local credit = num(c.h.credit, 0) + c.cfg.share * ctx.rate * (upto - from) / TICK_MS
      credit = math.min(credit, credit_cap(ctx, c, num(c.h.last_cost, 1)))
      set_cls(c, 'credit', string.format('%.6f', credit))
      set_cls(c, 'credit_ms', upto)
    end
  end
  if expired then set_cls(c, 'waiting_since_ms', nil) end
end

local function entitled(c, cost)
  return c.cfg.share > 0 and num(c.h.credit, 0) >= cost
end

-- What a class needs from the estimate before a call of `cost` may start, ignoring
-- other classes. Returns target, reason, wait_ms.
local function own_need(ctx, c, cost)
  local hard = hard_target(ctx, cost)
  local hard_reason = hard > 1 and 'deficit_floor' or 'hard_stop'
  if entitled(c, cost) then
    return hard, hard_reason, time_to(ctx, hard)
  end
  local target, reason = hard, hard_reason
  if c.cfg.threshold > target then target, reason = c.cfg.threshold, 'threshold' end
  local wait = time_to(ctx, target)
  local manual = ctx.st.rc_manual == '1'
  if c.cfg.gated and ctx.st.rc_active == '1' and (ctx.est < ctx.high or manual) then
    local since = num(ctx.st.rc_since_ms, ctx.now)
    local until_timeout = math.max(0, since + ctx.cfg.timeout_ms - ctx.now)
    local until_exit = manual and until_timeout or min_wait(time_to(ctx, ctx.high), until_timeout)
    local rc_wait = max_wait(until_exit, wait)
    if rc_wait ~= 0 then
      -- Paused by hand, no balance admits a gated class: only resume or the timeout.
      return math.max(ctx.high, target), 'recharge', rc_wait, manual
    end
  end
  -- A class with a share that is not yet entitled becomes so once its credit accrues.
  if c.cfg.share > 0 and wait ~= 0 then
    local missing = cost - num(c.h.credit, 0)
    local accrue_ms = math.ceil(missing * TICK_MS / (c.cfg.share * ctx.rate))
    wait = min_wait(wait, max_wait(accrue_ms, time_to(ctx, hard)))
  end
  return target, reason, wait
end

-- Does `d` go before `c`? Entitled classes first; between two entitled classes the one
-- waiting longer, so a class whose share re-entitles it every tick cannot keep one with
-- a larger cost behind it for good (both would otherwise guard only each other's
-- nominal target); then by priority (0 = highest).
local function precedes(ctx, d, d_cost, c, c_cost)
  local de, ce = entitled(d, d_cost), entitled(c, c_cost)
  if de ~= ce then return de end
  if de then
    local d_since = num(d.h.waiting_since_ms, ctx.now)
    local c_since = num(c.h.waiting_since_ms, ctx.now)
    if d_since ~= c_since then return d_since < c_since end
  end
  return d.cfg.priority < c.cfg.priority
end

-- What class d holds back for itself before its next request of `d_cost`: its own
-- target and, entitled, every further request its credit pays for. Otherwise a greedy
-- class asking in between leaves it one request a tick and the rest of its credit runs
-- into the cap unspent. Bounded by the credit cap, which the others' bounds count (C_o).
local function claim(ctx, d, d_cost)
  local t = own_need(ctx, d, d_cost)
  if entitled(d, d_cost) then
    t = t + (math.floor(num(d.h.credit, 0) / d_cost) - 1) * d_cost
  end
  return t
end

-- An entitled class keeps its claim between a grant and its next ask (its Keepa
-- call): otherwise whoever asks in that gap takes the tokens its credit stands for.
local function claims_now(ctx, d, d_cost)
  return is_waiting(ctx, d) or (entitled(d, d_cost) and asked_lately(ctx, d))
end

-- The balance class d, which goes before c by priority, must find to be served: a class
-- without credit must itself leave the entitled classes' claims, and c (asking now,
-- without credit) is one of those as soon as its share accrues. Leaving d only its own
-- target let c spend the balance down to it at every tick while d, blocked by c's
-- claim, was never served (found by the property test on 2026-12-01).
local function need_behind_claims(ctx, d, d_cost, c, cost)
  local t = own_need(ctx, d, d_cost)
  for i = 1, ctx.n do
    local e = ctx.classes[i]
    local e_cost = num(e.h.last_cost, 1)
    if e ~= d and e ~= c and entitled(e, e_cost) and claims_now(ctx, e, e_cost) then
      t = math.max(t, claim(ctx, e, e_cost) + d_cost)
    end
  end
  if c.cfg.share > 0 then t = math.max(t, hard_target(ctx, cost) + d_cost) end
  return t
end

-- The full decision for class c asking for `cost`: own need, then yielding to every
-- class with a claim that goes first and whose target the grant would push out of reach.
local function decide(ctx, c, cost)
  local target, reason, wait, blocked = own_need(ctx, c, cost)
  local ok = ctx.est >= target and not blocked
  local c_entitled = entitled(c, cost)
  for i = 1, ctx.n do
    local d = ctx.classes[i]
    local d_cost = num(d.h.last_cost, 1)
    local d_entitled = entitled(d, d_cost)
    -- A claim between asks holds back only classes without credit: between entitled
    -- classes the one waiting longer goes first, and one not waiting has no wait.
    local has_claim = claims_now(ctx, d, d_cost) and (not c_entitled or is_waiting(ctx, d))
    if d ~= c and has_claim and precedes(ctx, d, d_cost, c, cost) then
      local d_target
      if d_entitled then
        d_target = claim(ctx, d, d_cost)
      else
        d_target = need_behind_claims(ctx, d, d_cost, c, cost)
      end
      if ctx.est - cost < d_target then
        local expires = num(d.h.last_ask_ms, ctx.now) + ctx.cfg.demand_ttl_ms - ctx.now
        local y_wait = min_wait(time_to(ctx, d_target + cost), math.max(0, expires))
        y_wait = max_wait(wait, y_wait)
        if ok or y_wait == NEVER or (wait ~= NEVER and y_wait > wait) then
          ok = false
          wait = y_wait
          target = math.max(target, d_target + cost)
          reason = d_entitled and 'yield_to_share' or 'yield_to_priority'
        end
      end
    end
  end
  if ok then return true, target, 'ok', 0 end
  return false, target, reason, wait
end

-- Worst-case wait for a class that keeps asking for `cost` (see docs/token-manager.md).
local function bound_ms(ctx, c, cost)
  local f = ctx.cfg.floor
  local others_credit, others_share, higher_unshared = 0, 0, false
  local others_claim = 0  -- the largest claim a shared class can hold (see claim())
  for i = 1, ctx.n do
    local d = ctx.classes[i]
    if d ~= c then
      if d.cfg.share > 0 then
        local d_cost = math.max(num(d.h.last_cost, 1), 1)
        local d_cap = credit_cap(ctx, d, d_cost)
        others_share = others_share + d.cfg.share
        others_credit = others_credit + d_cap
        others_claim = math.max(others_claim, hard_target(ctx, d_cost) + d_cap - d_cost)
      elseif d.cfg.priority <= c.cfg.priority then
        higher_unshared = true
      end
    end
  end
  local per_token_ms = TICK_MS / ctx.rate
  if c.cfg.share > 0 then
    local accrue_ms = cost * TICK_MS / (c.cfg.share * ctx.rate)
    local recover = hard_target(ctx, cost) - f + others_credit
    -- While it recovers, the other entitled classes keep drawing their shares of the
    -- refill (at most S_o, and S_o <= 1 - s < 1): only the rest refills for this class.
    return math.ceil(accrue_ms + recover * per_token_ms / (1 - others_share) + TICK_MS)
  end
  if higher_unshared or others_share >= 1 then return NEVER end
  -- Without credit it is served only once it can also leave the entitled classes'
  -- claims (need_behind_claims), whatever its own target.
  local target = math.max(c.cfg.threshold, hard_target(ctx, cost), cost + others_claim)
  local need = target - f + others_credit
  local b = need * per_token_ms / (1 - others_share) + TICK_MS
  if c.cfg.gated then b = b + ctx.cfg.timeout_ms end
  return math.ceil(b)
end

local function minute_of(ms) return math.floor(ms / TICK_MS) end

local function granted_last_hour(ctx, i)
  local key = ctx.keys[3 + ctx.n + i]
  local flat = redis.call('HGETALL', key)
  local total, oldest = 0, minute_of(ctx.now) - 59
  for j = 1, #flat, 2 do
    if tonumber(flat[j]) >= oldest then total = total + tonumber(flat[j + 1]) end
  end
  return total
end

local function prune_granted(ctx, c)
  -- Once a minute at most: the hash only grows by a field when the minute changes.
  local minute = minute_of(ctx.now)
  if num(c.h.granted_minute) == minute then return end
  set_cls(c, 'granted_minute', minute)
  local key = ctx.keys[3 + ctx.n + c.idx]
  if redis.call('HLEN', key) <= 90 then return end
  local flat = redis.call('HKEYS', key)
  local oldest = minute_of(ctx.now) - 60
  for j = 1, #flat do
    if tonumber(flat[j]) < oldest then redis.call('HDEL', key, flat[j]) end
  end
end

local function add_granted(ctx, c, tokens)
  if tokens == 0 then return end
  redis.call('HINCRBY', ctx.keys[3 + ctx.n + c.idx], minute_of(ctx.now), tokens)
  set_cls(c, 'granted_total', num(c.h.granted_total, 0) + tokens)
  prune_granted(ctx, c)
end

-- A grant's id carries its class and cost, so the in-flight zset is its only record:
-- "<granted_ms>.<seq>|<class>|<cost>". The time keeps ids unique across a FLUSHALL,
-- which restarts seq.
local function grant_id(ctx, c, cost)
  local seq = num(ctx.st.seq, 0) + 1
  set_st(ctx, 'seq', seq)
  return string.format('%d.%d|%s|%d', ctx.now, seq, c.cfg.name, cost)
end

-- Forget a grant: it settled, or a newer server value already includes its charge.
local function drop_grant(ctx, id)
  if redis.call('ZREM', ctx.keys[2], id) == 0 then return nil end
  set_st(ctx, 'inflight_n', math.max(0, num(ctx.st.inflight_n, 1) - 1))
  local cls, cost, granted_ms, seq = grant_record(ctx, id)
  if string.find(id, '|', 1, true) == nil then redis.call('HDEL', ctx.keys[3], id) end
  if cls == nil then return nil end
  ctx.inflight_cost = math.max(0, ctx.inflight_cost - cost)
  set_st(ctx, 'inflight_cost', ctx.inflight_cost)
  return cls, cost, granted_ms, seq
end

-- Subtract `tokens` from the estimate's base. The base is first moved to now: the
-- balance projected to now (capped, as Keepa caps it) less the tokens, with the ticks
-- since counted from now on. Subtracting after the cap instead (as for grants in
-- flight, which leave soon) would keep the estimate that much below a full bucket for
-- as long as the charge stays. Keepa's own number stays in keepa_left.
local function rebase_less(ctx, tokens)
  local k = ticks_through(ctx, ctx.now)
  if ctx.st.keepa_left == nil then set_st(ctx, 'keepa_left', ctx.balance) end
  ctx.balance = math.min(ctx.cap, ctx.balance + k * ctx.rate) - tokens
  ctx.next_tick = ctx.next_tick + k * TICK_MS
  set_st(ctx, 'balance', ctx.balance)
  set_st(ctx, 'next_tick_ms', ctx.next_tick)
end

-- Charge what an answer that is not applied says its call consumed, when the applied
-- number may not include it. The charge is held (`held`, tokens) until an answer whose
-- request was sent after it arrived (`held_until_ms`, in a later millisecond) is
-- applied: Keepa had run the call by then. An applied answer sent earlier may still
-- lack it, so the charge outlives that answer (settle.lua subtracts it again).
local function hold(ctx, tokens)
  if tokens <= 0 then return end
  set_st(ctx, 'held', num(ctx.st.held, 0) + tokens)
  set_st(ctx, 'held_until_ms', math.max(num(ctx.st.held_until_ms, 0), ctx.now))
  rebase_less(ctx, tokens)
end

local function refresh_estimate(ctx)
  ctx.est = project(ctx) - ctx.inflight_cost
end
