-- One operator command for the breaker fleet, in one atomic step (docs/breakers.md): the next
-- number, appended to the log (a sorted set scored by number, the newest ARGV[4] kept), and
-- the breaker's standing command.
-- KEYS[1] sequence counter, KEYS[2] log, KEYS[3] standing hash (one hash tag)
-- ARGV[1] breaker, ARGV[2] action, ARGV[3] wall-clock time, ARGV[4] log length
local seq = redis.call('INCR', KEYS[1])
local command = cjson.encode({
  seq = seq, breaker = ARGV[1], action = ARGV[2], at = tonumber(ARGV[3]),
})
redis.call('ZADD', KEYS[2], seq, command)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[4]) - 1)
redis.call('HSET', KEYS[3], ARGV[1], command)
return seq
