-- Give back the jobs of one processing list whose worker is gone for good: not registered, no
-- heartbeat, no lease. Recovery removes a dead worker from the registry; a zombie that then
-- fetched into its own lists before it found out and rejoined, and died in that window, leaves
-- such a list behind (fetcher/registry.py sweeps for them).
-- A queue key of another type cannot take them back: they go to the dead-letter list with the
-- reason (as in recover.lua).
-- KEYS: processing list, its queue, heartbeat, lease, registry set, wake list, dead-letter list.
-- ARGV: worker id, wake bound, now (unix s).  Returns the number of jobs moved, or -1 when the
-- "processing list" holds another type than a list (left alone: the caller reports it).
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1
    or redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return 0
end
local own = redis.call('TYPE', KEYS[1])['ok']
if own ~= 'list' and own ~= 'none' then
  return -1
end
local n = 0
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'list' and kind ~= 'none' then
  local item = redis.call('LPOP', KEYS[1])
  while item do
    redis.call('RPUSH', KEYS[7], dead_letter_entry(KEYS[2], item,
      'orphaned by worker ' .. ARGV[1] .. ', but its queue key ' .. KEYS[2]
        .. ' holds a ' .. kind .. ', not a list',
      ARGV[3]))
    n = n + 1
    item = redis.call('LPOP', KEYS[1])
  end
  return n
end
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  n = n + 1
end
local wake = redis.call('TYPE', KEYS[6])['ok']
if n > 0 and (wake == 'list' or wake == 'none') then
  redis.call('RPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[2]), -1)
end
return n
