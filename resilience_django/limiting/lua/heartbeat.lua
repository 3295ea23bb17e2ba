-- One process says it is alive and learns how many are (scored by Redis TIME, so instances
-- with skewed clocks agree).  KEYS[1]: sorted set of instance ids by last heartbeat (ms);
-- ARGV[1]: this instance's id; ARGV[2]: how long a heartbeat counts (ms).  Returns the count
-- and 1 if this instance was not in the set (its first heartbeat, or the set was lost).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return {redis.call('ZCARD', KEYS[1]), added}
