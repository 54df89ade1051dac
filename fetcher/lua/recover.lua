-- Recover the jobs of dead workers: every registered worker whose heartbeat key is gone has
-- each of its processing lists moved back to the HEAD of its queue (order preserved), then is
-- removed from the registry and its lease deleted (so a late settle from it, a zombie, is
-- refused by the fence in ack.lua/settle.lua). One atomic script, so two recoverers never move
-- a job twice.
-- Each list is given back by give_back_list: to the head of its queue with a wake token, or,
-- when the queue key holds another type, to the dead-letter list with the reason.
-- KEYS[1] registry set, KEYS[2] dead-letter list.  ARGV: heartbeat prefix, worker-queues
-- prefix, processing prefix, wake prefix, wake bound, the caller's worker id ('' for none),
-- lease prefix, now (unix s).
-- A dead worker's key of another type than this script expects (its worker-queues key not a
-- set, a processing key not a list) is left alone and reported: WRONGTYPE would stop the
-- script, and with it every worker's recovery, for one foreign key.
-- Returns {jobs moved, workers removed, {dead worker id, jobs moved from it, ...},
-- {key left alone, its type, ...}}.  The caller
-- is alive by definition, even when its own heartbeat expired: a call it sent just before Redis
-- froze can run after the thaw, when its TTL has run out, and must not requeue the jobs it is
-- running (or finished and is acking on another connection).
local moved, removed, dead, broken = 0, 0, {}, {}
local function left_alone(key, kind)
  broken[#broken + 1] = key
  broken[#broken + 1] = kind
end
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if wid ~= ARGV[6] and redis.call('EXISTS', ARGV[1] .. wid) == 0 then
    local qset = ARGV[2] .. wid
    local from_this = 0
    local is_set, kind = holds(qset, 'set')
    if not is_set then
      left_alone(qset, kind)
    end
    for _, q in ipairs(is_set and redis.call('SMEMBERS', qset) or {}) do
      local p = ARGV[3] .. wid .. ':' .. q
      local n, own_kind = give_back_list(p, q, ARGV[4] .. q, ARGV[5], KEYS[2],
        'recovered from dead worker ' .. wid, ARGV[8], ARGV[6])
      if n then
        from_this = from_this + n
      else
        left_alone(p, own_kind)
      end
    end
    redis.call('DEL', qset, ARGV[7] .. wid)
    redis.call('SREM', KEYS[1], wid)
    removed = removed + 1
    moved = moved + from_this
    dead[#dead + 1] = wid
    dead[#dead + 1] = from_this
  end
end
return {moved, removed, dead, broken}
