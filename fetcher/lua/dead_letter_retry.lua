-- Retry dead-lettered jobs: for each candidate, write the fresh payload to its queue FIRST, push
-- a wake token, and only then remove the dead-letter entry (Redis does not roll a failed script
-- back: a write that fails must leave the entry where it was). A candidate whose queue key holds
-- another type than a list is refused before anything is written for it, and stays.
-- KEYS[1] dead list, then per candidate j: KEYS[2j] its queue key, KEYS[2j+1] that queue's wake
-- list (declared, so on a cluster the call stays in the slot of the one queue it serves).
-- ARGV: wake bound, then per candidate j: ARGV[2j] the entry exactly as stored, ARGV[2j+1] the
-- fresh payload.
-- Returns one status per candidate: 1 requeued, 0 the entry is gone (retried or purged by
-- someone else), or a string saying why it was refused.
local out = {}
for j = 1, (#ARGV - 1) / 2 do
  local entry, fresh = ARGV[2 * j], ARGV[2 * j + 1]
  local q, wake = KEYS[2 * j], KEYS[2 * j + 1]
  local fits, kind = holds(q, 'list')
  if not redis.call('LPOS', KEYS[1], entry) then
    out[#out + 1] = 0
  elseif not fits then
    out[#out + 1] = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
  else
    redis.call('RPUSH', q, fresh)
    wake_up(wake, ARGV[1])
    redis.call('LREM', KEYS[1], 1, entry)
    out[#out + 1] = 1
  end
end
return out
