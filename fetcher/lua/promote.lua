-- Promote due scheduled jobs: up to ARGV[2] members with score <= ARGV[1] leave the zset and
-- are appended to the queue named in their payload ("queue": key), with a wake token. A member
-- naming no queue is dead-lettered with the reason, never dropped.
-- KEYS[1] scheduled zset, KEYS[2] dead list.  ARGV: now, limit, wake prefix, wake bound.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, member in ipairs(due) do
  local ok, body = pcall(cjson.decode, member)
  local q = ok and type(body) == 'table' and body['queue']
  if type(q) == 'string' and q ~= '' then
    redis.call('RPUSH', q, member)  -- before the ZREM: a failed script is not rolled back
    redis.call('RPUSH', ARGV[3] .. q, '1')
    redis.call('LTRIM', ARGV[3] .. q, -tonumber(ARGV[4]), -1)
    moved = moved + 1
  else
    redis.call('RPUSH', KEYS[2], cjson.encode({
      queue = KEYS[1], raw = member, reason = 'scheduled payload names no queue',
      error = cjson.null, traceback = cjson.null, attempts = 0, failed_at = tonumber(ARGV[1]),
      worker_id = cjson.null}))
  end
  redis.call('ZREM', KEYS[1], member)
end
return moved
