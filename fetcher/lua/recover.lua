-- Recover the jobs of dead workers: every registered worker whose heartbeat key is gone has
-- each of its processing lists moved back to the HEAD of its queue (order preserved), then is
-- removed from the registry and its lease deleted (so a late settle from it, a zombie, is
-- refused by the fence in ack.lua/settle.lua). One atomic script, so two recoverers never move
-- a job twice.
-- A queue key that holds another type cannot take its jobs back: they go to the dead-letter
-- list with the reason instead (a failed LMOVE would stop the script, every recovery after it,
-- and every worker: one broken key must not take the fleet down).
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
local function is(key, wanted)
  local kind = redis.call('TYPE', key)['ok']
  if kind == wanted or kind == 'none' then
    return true
  end
  broken[#broken + 1] = key
  broken[#broken + 1] = kind
  return false
end
for _, wid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if wid ~= ARGV[6] and redis.call('EXISTS', ARGV[1] .. wid) == 0 then
    local qset = ARGV[2] .. wid
    local from_this = 0
    local queues = is(qset, 'set') and redis.call('SMEMBERS', qset) or {}
    for _, q in ipairs(queues) do
      local p = ARGV[3] .. wid .. ':' .. q
      local n = 0
      local kind = redis.call('TYPE', q)['ok']
      if not is(p, 'list') then
        n = 0
      elseif kind == 'list' or kind == 'none' then
        while redis.call('LMOVE', p, q, 'RIGHT', 'LEFT') do
          n = n + 1
        end
        local wake = redis.call('TYPE', ARGV[4] .. q)['ok']
        if n > 0 and (wake == 'list' or wake == 'none') then
          redis.call('RPUSH', ARGV[4] .. q, '1')
          redis.call('LTRIM', ARGV[4] .. q, -tonumber(ARGV[5]), -1)
        end
      else
        local item = redis.call('LPOP', p)
        while item do
          redis.call('RPUSH', KEYS[2], dead_letter_entry(q, item,
            'recovered from dead worker ' .. wid .. ', but its queue key ' .. q
              .. ' holds a ' .. kind .. ', not a list',
            ARGV[8], ARGV[6]))
          n = n + 1
          item = redis.call('LPOP', p)
        end
      end
      from_this = from_this + n
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
