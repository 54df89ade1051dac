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
  local kind = redis.call('TYPE', q)['ok']
  if not redis.call('LPOS', KEYS[1], entry) then
    out[#out + 1] = 0
  elseif kind ~= 'list' and kind ~= 'none' then
    out[#out + 1] = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
  else
    redis.call('RPUSH', q, fresh)
    local wake = ARGV[1] .. q
    local wake_kind = redis.call('TYPE', wake)['ok']
    if wake_kind == 'list' or wake_kind == 'none' then
      redis.call('RPUSH', wake, '1')
      redis.call('LTRIM', wake, -tonumber(ARGV[2]), -1)
    end
    redis.call('LREM', KEYS[1], 1, entry)
    out[#out + 1] = 1
  end
end
return out
