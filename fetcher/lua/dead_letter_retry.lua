-- Retry dead-lettered jobs: for each candidate, write the fresh payload to its queue FIRST, push
-- a wake token, and only then remove the dead-letter entry (Redis does not roll a failed script
-- back: a write that fails must leave the entry where it was). A candidate whose queue key holds
-- another type than a list is refused before anything is written for it, and stays.
-- KEYS[1] dead list.  ARGV: wake prefix, wake bound, then per candidate: the entry exactly as
-- stored, its queue key, the fresh payload.
-- Returns one status per candidate: 1 requeued, 0 the entry is gone (retried or purged by
-- someone else), or a string saying why it was refused.
local out = {}
for i = 3, #ARGV, 3 do
  local entry, q, fresh = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fits, kind = holds(q, 'list')
  if not redis.call('LPOS', KEYS[1], entry) then
    out[#out + 1] = 0
  elseif not fits then
    out[#out + 1] = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
  else
    redis.call('RPUSH', q, fresh)
    wake_up(ARGV[1] .. q, ARGV[2])
    redis.call('LREM', KEYS[1], 1, entry)
    out[#out + 1] = 1
  end
end
return out
