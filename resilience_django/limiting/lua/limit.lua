-- All distributed limits of one request, decided in one call, all-or-nothing.
--
-- KEYS[i]  the state key of check i (all keys of one call share a hash slot)
-- ARGV[1]  1 = commit when every check passes, 0 = peek (never writes)
-- ARGV[2 + 5*(i-1) ...] for check i: algorithm (1 sliding window, 2 token
--          bucket, 3 GCRA), limit, period in microseconds, capacity, cost
--
-- Returns {allowed, then per check: allowed, remaining, reset_after_us,
-- retry_after_us}.  The clock is Redis TIME, never the caller's, so every
-- web server agrees on "now" whatever its own clock says.  Times are integer
-- microseconds since 2023-11-14 (1.7e9 s): small enough that doubles keep
-- them exact, which keeps GCRA's burst boundary exact too.
--
-- The first pass reads and evaluates every check without writing; the second
-- pass writes only when all passed, so a request rejected by one rule does
-- not consume the others.  Every key gets a TTL equal to the time after which
-- its state is indistinguishable from no state, so memory is bounded by the
-- keys active within one window.

local BUCKETS = 10
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local commit = ARGV[1] == '1'

local n = #KEYS
local results = {}
local all_ok = true
local plans = {}

for i = 1, n do
  local base = 2 + (i - 1) * 5
  local algo = tonumber(ARGV[base])
  local limit = tonumber(ARGV[base + 1])
  local period = tonumber(ARGV[base + 2])
  local cap = tonumber(ARGV[base + 3])
  local cost = tonumber(ARGV[base + 4])
  local key = KEYS[i]
  local ok, remaining, reset, retry

  if algo == 1 then
    -- Sliding window: BUCKETS sub-windows of width w; a request counts in
    -- bucket floor(now / w) and the window is the last BUCKETS buckets.
    local w = period / BUCKETS
    local cur = math.floor(now / w)
    local oldest = cur - BUCKETS + 1
    local fields = redis.call('HGETALL', key)
    local counts = {}
    local stale = {}
    local sum = 0
    for j = 1, #fields, 2 do
      local idx = tonumber(fields[j])
      if idx >= oldest then
        local c = tonumber(fields[j + 1])
        counts[idx] = c
        sum = sum + c
      else
        stale[#stale + 1] = fields[j]
      end
    end
    ok = sum + cost <= limit
    if ok then
      counts[cur] = (counts[cur] or 0) + cost
      remaining = limit - sum - cost
      retry = 0
    else
      remaining = math.max(0, limit - sum)
      retry = 0
      if cost > limit then retry = period end
    end
    -- reset: when the oldest non-empty bucket leaves the window; retry: when
    -- enough of the oldest buckets have left for cost to fit (as the local
    -- kernel computes them).
    local need = 0
    if not ok and cost <= limit then need = sum + cost - limit end
    local freed = 0
    reset = 0
    for idx = oldest, cur do
      local c = counts[idx]
      if c and c > 0 then
        local leaves = (idx + BUCKETS) * w - now
        if freed == 0 then reset = leaves end
        freed = freed + c
        if freed >= need then
          if need > 0 then retry = leaves end
          break
        end
      end
    end
    plans[i] = {1, key, cur, cost, stale, math.ceil(period / 1000)}

  elseif algo == 2 then
    -- Token bucket: cap tokens, refilled at limit / period; state (tokens, last).
    local rate = limit / period
    local st = redis.call('HMGET', key, 't', 'l')
    local tokens = cap
    if st[1] then
      tokens = math.min(cap, tonumber(st[1]) + math.max(0, now - tonumber(st[2])) * rate)
    end
    -- The tolerance absorbs float error in the refill, never a whole token.
    ok = tokens + 1e-6 >= cost
    local left = tokens
    if ok then
      left = math.max(0, tokens - cost)
      retry = 0
    elseif cost > cap then
      retry = period
    else
      retry = (cost - tokens) / rate
    end
    remaining = math.floor(left + 1e-6)
    reset = (cap - left) / rate
    plans[i] = {2, key, left, now, math.ceil(reset / 1000) + 1}

  else
    -- GCRA: emission interval T, tolerance tau = cap * T, state TAT.  T is
    -- rounded down to whole microseconds so the arithmetic stays exact.
    local T = math.max(1, math.floor(period / limit))
    local tau = cap * T
    local tat = tonumber(redis.call('GET', key) or now)
    local start = math.max(tat, now)
    local new_tat = start + cost * T
    ok = new_tat - now <= tau
    if ok then
      remaining = math.floor((tau - (new_tat - now)) / T)
      reset = new_tat - now
      retry = 0
    else
      remaining = math.max(0, math.floor((tau - (start - now)) / T))
      reset = start - now
      if cost > cap then retry = period else retry = new_tat - now - tau end
    end
    plans[i] = {3, key, new_tat, math.ceil((new_tat - now) / 1000) + 1}
  end

  if not ok then all_ok = false end
  results[#results + 1] = ok and 1 or 0
  results[#results + 1] = remaining
  results[#results + 1] = math.ceil(reset)
  results[#results + 1] = math.ceil(retry)
end

if all_ok and commit then
  for i = 1, n do
    local p = plans[i]
    if p[1] == 1 then
      redis.call('HINCRBY', p[2], string.format('%d', p[3]), p[4])
      if #p[5] > 0 then redis.call('HDEL', p[2], unpack(p[5])) end
      redis.call('PEXPIRE', p[2], p[6])
    elseif p[1] == 2 then
      redis.call('HSET', p[2], 't', string.format('%.17g', p[3]), 'l', string.format('%d', p[4]))
      redis.call('PEXPIRE', p[2], p[5])
    else
      redis.call('SET', p[2], string.format('%d', p[3]), 'PX', p[4])
    end
  end
end

table.insert(results, 1, all_ok and 1 or 0)
return results
