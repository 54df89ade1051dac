-- Retry dead-lettered jobs: for each candidate, write the fresh payload to its queue FIRST, push
-- a wake token, and only then remove the dead-letter entry (Redis does not roll a failed script
-- back: a write that fails must leave the entry where it was). A candidate whose queue key holds
-- another type than a list is refused before anything is written for it, and stays.
-- A retry is an enqueue of the job's id: it reserves the id as enqueue.lua does (reserve_id,
-- lua/_reserve_id.lua), so a producer's enqueue of that id, another retry of it, or the job
-- still queued, running or finished within its unique window keeps the entry where it is
-- (refused, saying so) instead of running the job twice.
-- KEYS[1] dead list, then per candidate j: KEYS[3j-1] its queue key, KEYS[3j] that queue's wake
-- list, KEYS[3j+1] its id's reservation (declared, so on a cluster the call stays in the slot of
-- the one queue it serves).
-- ARGV: wake bound, call token, reservation hold ms, then per candidate j: ARGV[3j+1] the entry
-- exactly as stored, ARGV[3j+2] the fresh payload, ARGV[3j+3] its unique window ms.
-- Returns one status per candidate: 1 requeued, 0 the entry is gone (retried or purged by
-- someone else), or a string saying why it was refused.
local bound, token, hold = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for j = 1, (#ARGV - 3) / 3 do
  local entry, fresh, window = ARGV[3 * j + 1], ARGV[3 * j + 2], ARGV[3 * j + 3]
  local q, wake, unique = KEYS[3 * j - 1], KEYS[3 * j], KEYS[3 * j + 1]
  local fits, kind = holds(q, 'list')
  local id_fits, id_kind = holds(unique, 'string')
  if not redis.call('LPOS', KEYS[1], entry) then
    out[#out + 1] = 0
  elseif not fits then
    out[#out + 1] = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
  elseif not id_fits then
    out[#out + 1] = 'id reservation key ' .. unique .. ' holds a ' .. id_kind .. ', not a string'
  elseif not reserve_id(unique, token .. ':' .. j .. ':', window, hold) then
    out[#out + 1] = 'its id is reserved by another job with this id (queued, scheduled, running '
      .. 'or finished within its unique window): retry it once that job has settled and its '
      .. 'window passed (at the latest in ' .. math.ceil(redis.call('PTTL', unique) / 1000)
      .. ' s)'
  else
    redis.call('RPUSH', q, fresh)
    wake_up(wake, bound)
    redis.call('LREM', KEYS[1], 1, entry)
    out[#out + 1] = 1
  end
end
return out
