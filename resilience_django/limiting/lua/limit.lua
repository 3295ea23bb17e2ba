-- All distributed limits of one request, decided in one call, all-or-nothing.
--
-- KEYS[i]  the state key of check i (all keys of one call share a hash slot)
-- ARGV[1]  1 = commit when every check passes, 0 = peek (never writes);
--          "1 k": checks k.. are shadow checks, decided (and committed) as a
--          second all-or-nothing group, so enforced and shadow rules cost one call
-- ARGV[2 + 5*(i-1) ...]  check i: algorithm (1 sliding window, 2 token
--          bucket, 3 GCRA), limit, period in microseconds, capacity, cost
--
-- Returns one string of integers separated by spaces: allowed, then per
-- check allowed, remaining, reset_after_us, retry_after_us.  With a shadow
-- group: allowed (enforced group), shadow allowed, then the per-check values.  One string
-- rather than an array because the client spends microseconds per array
-- element parsing it.
--
-- The clock is Redis TIME, never the caller's, so every web server agrees on
-- "now" whatever its own clock says.  Times are integer microseconds since
-- 2023-11-14 (1.7e9 s): small enough that doubles keep them exact, which
-- keeps GCRA's burst boundary exact too.
--
-- State is one string per key, packed with struct (one MGET for all rules,
-- then one SET PX per rule; no hash to walk):
--   sliding window  BUCKETS + 1 doubles: newest bucket index, then the
--                   ring of counts, bucket j in slot j mod BUCKETS
--   token bucket    2 doubles: tokens, last refill (us)
--   GCRA            the theoretical arrival time (us) as a decimal string
--
-- The first pass reads and evaluates every check without writing; the second
-- pass writes only when all passed, so a request rejected by one rule does
-- not consume the others.  Every key's TTL is the time after which its state
-- is indistinguishable from no state, so memory is bounded by the keys
-- active within one window.

local BUCKETS = 10
local SW_FORMAT = '<ddddddddddd'
local TB_FORMAT = '<dd'
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local commit = ARGV[1]:sub(1, 1) == '1'
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min

local n = #KEYS
-- Checks split.. form the shadow group; without one, split is past the end.
local split = tonumber(ARGV[1]:sub(3)) or (n + 1)
-- One MGET for every rule's state: each redis.call costs microseconds.
local states = redis.call('MGET', unpack(KEYS))
local out = {}
local all_ok = true
local shadow_ok = true
-- What pass 2 writes for check i: the packed value and its TTL in ms.
local new_value = {}
local new_ttl = {}

for i = 1, n do
  local base = 2 + (i - 1) * 5
  local algo = tonumber(ARGV[base])
  local limit = tonumber(ARGV[base + 1])
  local period = tonumber(ARGV[base + 2])
  local cap = tonumber(ARGV[base + 3])
  local cost = tonumber(ARGV[base + 4])
  local raw = states[i]
  local ok, remaining, reset, retry

  if algo == 1 then
    -- Sliding window: BUCKETS buckets of width w; a request counts in
    -- bucket floor(now / w) and the window is the newest BUCKETS buckets.
    local w = period / BUCKETS
    local cur = floor(now / w)
    local ring = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    local head = cur
    if raw then
      local s = {struct.unpack(SW_FORMAT, raw)}
      head = s[1]
      if cur - head < BUCKETS then
        for j = 1, BUCKETS do ring[j] = s[j + 1] end
      end
      -- Slide: zero the buckets between the stored head and now; a clock
      -- that went backwards (failover) counts into the newest bucket.
      if cur > head then
        for b = max(head + 1, cur - BUCKETS + 1), cur do ring[b % BUCKETS + 1] = 0 end
        head = cur
      end
    end
    local sum = 0
    for j = 1, BUCKETS do sum = sum + ring[j] end
    ok = sum + cost <= limit
    retry = 0
    if ok then
      ring[head % BUCKETS + 1] = ring[head % BUCKETS + 1] + cost
      sum = sum + cost
    elseif cost > limit then
      retry = period
    end
    remaining = max(0, limit - sum)
    -- reset: when the oldest non-empty bucket leaves the window; retry: when
    -- enough of the oldest buckets have left for cost to fit.
    local need = 0
    if not ok and cost <= limit then need = sum + cost - limit end
    local freed = 0
    reset = 0
    for b = head - BUCKETS + 1, head do
      local c = ring[b % BUCKETS + 1]
      if c > 0 then
        local leaves = (b + BUCKETS) * w - now
        if freed == 0 then reset = leaves end
        freed = freed + c
        if freed >= need then
          if need > 0 then retry = leaves end
          break
        end
      end
    end
    new_value[i] = struct.pack(SW_FORMAT, head, ring[1], ring[2], ring[3], ring[4], ring[5],
      ring[6], ring[7], ring[8], ring[9], ring[10])
    new_ttl[i] = ceil(period / 1000)

  elseif algo == 2 then
    -- Token bucket: cap tokens refilled at limit / period; a new key is full.
    local rate = limit / period
    local tokens = cap
    if raw then
      local stored, last = struct.unpack(TB_FORMAT, raw)
      tokens = min(cap, stored + max(0, now - last) * rate)
    end
    -- The slack absorbs float error in the refill, never a whole token.
    ok = tokens + 1e-6 >= cost
    if ok then
      tokens = max(0, tokens - cost)
      retry = 0
    elseif cost > cap then
      retry = period
    else
      retry = (cost - tokens) / rate
    end
    remaining = floor(tokens + 1e-6)
    reset = (cap - tokens) / rate
    new_value[i] = struct.pack(TB_FORMAT, tokens, now)
    new_ttl[i] = ceil(reset / 1000) + 1

  else
    -- GCRA: emission interval T, tolerance tau = cap * T, state TAT.  T is
    -- rounded down to whole microseconds so the arithmetic stays exact.
    local T = max(1, floor(period / limit))
    local tau = cap * T
    local start = now
    if raw then start = max(tonumber(raw), now) end
    local new_tat = start + cost * T
    ok = new_tat - now <= tau
    if ok then
      remaining = floor((tau - (new_tat - now)) / T)
      reset = new_tat - now
      retry = 0
    else
      remaining = max(0, floor((tau - (start - now)) / T))
      reset = start - now
      if cost > cap then retry = period else retry = new_tat - now - tau end
    end
    new_value[i] = string.format('%d', new_tat)
    new_ttl[i] = ceil((new_tat - now) / 1000) + 1
  end

  if not ok then
    if i < split then all_ok = false else shadow_ok = false end
  end
  -- Integers below 1e14 print exactly with Lua's default number format.
  out[#out + 1] = ok and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = ceil(reset)
  out[#out + 1] = ceil(retry)
end

if commit then
  -- Each group commits on its own: a shadow rejection never rolls back an
  -- enforced rule, and an enforced rejection never hides a shadow count.
  if all_ok then
    for i = 1, split - 1 do
      redis.call('SET', KEYS[i], new_value[i], 'PX', new_ttl[i])
    end
  end
  if shadow_ok then
    for i = split, n do
      redis.call('SET', KEYS[i], new_value[i], 'PX', new_ttl[i])
    end
  end
end

if split > n then
  return (all_ok and '1 ' or '0 ') .. table.concat(out, ' ')
end
return (all_ok and '1 ' or '0 ') .. (shadow_ok and '1 ' or '0 ') .. table.concat(out, ' ')
