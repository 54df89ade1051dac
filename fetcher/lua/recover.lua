-- Recover the jobs of dead workers: every registered worker whose heartbeat key is gone has
-- each of its processing lists moved back to the HEAD of its queue (order preserved), then is
-- removed from the registry. One atomic script, so two recoverers never move a job twice.
-- KEYS[1] registry set.  ARGV: heartbeat prefix, worker-queues prefix, processing prefix,
-- wake prefix, wake bound, the caller's worker id ('' for none).  Returns {jobs moved, workers
-- removed}.  The caller is alive by definition, even when its own heartbeat expired: a call it
-- sent just before Redis froze can run after the thaw, when its TTL has run out, and must not
-- requeue the jobs it is running (or finished and is acking on another connection).
local moved, removed = 0, 0
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if wid ~= ARGV[6] and redis.call('EXISTS', ARGV[1] .. wid) == 0 then
    local qset = ARGV[2] .. wid
    for _, q in ipairs(redis.call('SMEMBERS', qset)) do
      local p = ARGV[3] .. wid .. ':' .. q
      local n = 0
      while redis.call('LMOVE', p, q, 'RIGHT', 'LEFT') do
        n = n + 1
      end
      if n > 0 then
        redis.call('RPUSH', ARGV[4] .. q, '1')
        redis.call('LTRIM', ARGV[4] .. q, -tonumber(ARGV[5]), -1)
      end
      moved = moved + n
    end
    redis.call('DEL', qset)
    redis.call('SREM', KEYS[1], wid)
    removed = removed + 1
  end
end
return {moved, removed}
