-- All distributed limits of one request, decided in one call, all-or-nothing
-- (the packing, Redis's clock, the state layout and the TTLs: docs/redis.md).
--
-- KEYS[i]  the state key of check i (all keys of one call share a hash slot)
-- ARGV[1]  little-endian doubles: commit (1 = write when the group passes, 0 = peek),
--          split (0, or k: checks k.. are a second, shadow all-or-nothing group),
--          then per check: algorithm (1 sliding window, 2 token bucket, 3 GCRA),
--          limit, period (us), capacity, cost
-- Returns little-endian doubles: allowed (enforced group), allowed (shadow group),
-- then per check: allowed, remaining, reset_after_us, retry_after_us.

local BUCKETS = 10
local SW_FORMAT = '<ddddddddddd'
local TB_FORMAT = '<dd'
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local spack, sunpack, format = struct.pack, struct.unpack, string.format

local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000000 + tonumber(t[2])
local spec = ARGV[1]
local commit, split, pos = sunpack('<dd', spec)
local n = #KEYS
if split == 0 then split = n + 1 end
-- One read for every rule's state (GET for one rule: no table of keys to unpack).
local states
if n == 1 then states = {redis.call('GET', KEYS[1])} else
  states = redis.call('MGET', unpack(KEYS))
end
-- A single check's answer is packed straight into the reply (no table, no format).
local out = {1, 1}
local single
local all_ok, shadow_ok = true, true
-- What pass 2 writes for check i: the packed value and its TTL in ms (text made with
-- %d, far cheaper than Lua's default), or false to keep the key's TTL.
local new_value, new_ttl = {}, {}

for i = 1, n do
  local algo, limit, period, cap, cost
  algo, limit, period, cap, cost, pos = sunpack('<ddddd', spec, pos)
  local raw = states[i]
  local ok, remaining, reset, retry

  if algo == 1 then
    -- Sliding window: bucket b (width w) counts in s[b % BUCKETS + 2]; s[1]: the newest b.
    local w = period / BUCKETS
    local cur = floor(now / w)
    local s
    local same_head = false
    if raw then s = {sunpack(SW_FORMAT, raw)} end
    if not raw or cur - s[1] >= BUCKETS then
      s = {cur, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
    elseif cur > s[1] then
      -- Slide; a clock that went backwards (failover) counts into the newest bucket.
      for b = s[1] + 1, cur do s[b % BUCKETS + 2] = 0 end
      s[1] = cur
    else
      same_head = true
    end
    local head = s[1]
    local sum = s[2] + s[3] + s[4] + s[5] + s[6] + s[7] + s[8] + s[9] + s[10] + s[11]
    ok = sum + cost <= limit
    retry = 0
    if ok then
      local slot = head % BUCKETS + 2
      s[slot] = s[slot] + cost
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
      local c = s[b % BUCKETS + 2]
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
    new_value[i] = spack(SW_FORMAT, unpack(s, 1, BUCKETS + 1))
    new_ttl[i] = not same_head and format('%d', ceil(period / 1000))

  elseif algo == 2 then
    -- Token bucket: cap tokens refilled at limit / period; a new key is full.
    local rate = limit / period
    local tokens = cap
    if raw then
      local stored, last = sunpack(TB_FORMAT, raw)
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
    new_value[i] = spack(TB_FORMAT, tokens, now)
    new_ttl[i] = format('%d', ceil(reset / 1000) + 1)

  else
    -- GCRA: T rounded up to whole microseconds so the arithmetic stays exact (down, the
    -- rate would be exceeded: 7000/s would run at 1/142 us, 0.6 % over).
    local T = ceil(period / limit)
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
    new_value[i] = format('%d', new_tat)
    new_ttl[i] = format('%d', ceil((new_tat - now) / 1000) + 1)
  end

  if not ok then
    if i < split then all_ok = false else shadow_ok = false end
  end
  if n == 1 then
    single = spack('<dddd', ok and 1 or 0, remaining, ceil(reset), ceil(retry))
  else
    local o = 4 * i - 1
    out[o], out[o + 1], out[o + 2], out[o + 3] = ok and 1 or 0, remaining, ceil(reset), ceil(retry)
  end
end

if commit == 1 then
  -- Each group commits on its own.  SETRANGE keeps the key's TTL (same newest bucket;
  -- the value has the stored one's length) and skips SET's expiry bookkeeping.
  for i = 1, n do
    if (i < split and all_ok) or (i >= split and shadow_ok) then
      local ttl = new_ttl[i]
      if ttl then
        redis.call('SET', KEYS[i], new_value[i], 'PX', ttl)
      else
        redis.call('SETRANGE', KEYS[i], '0', new_value[i])
      end
    end
  end
end

if n == 1 then return spack('<dd', all_ok and 1 or 0, shadow_ok and 1 or 0) .. single end
out[1], out[2] = all_ok and 1 or 0, shadow_ok and 1 or 0
return spack('<' .. string.rep('d', #out), unpack(out))
