-- Redis Cluster: recovery of one dead worker's processing list for one queue, in that queue's
-- slot (recover.lua, which walks the registry, cannot run on a cluster: its keys span slots).
-- The caller found the worker registered with no heartbeat; this script moves its jobs only if
-- the worker's lease copy in this slot is gone too (it expires with the lease: a worker that
-- rejoined in between wrote a fresh one, and keeps its jobs). Moved to the HEAD of the queue,
-- order preserved, with a wake token; a queue key of another type sends them to this queue's
-- dead-letter list with the reason. Every key it touches is in KEYS.
-- KEYS: processing list, queue, wake list, dead-letter list, lease copy.
-- ARGV: dead worker id, wake bound, now (unix s), caller worker id.  Returns the jobs moved,
-- or -1 when the processing key holds another type than a list (left alone).
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
local own = redis.call('TYPE', KEYS[1])['ok']
if own ~= 'list' and own ~= 'none' then
  return -1  -- not a list: left alone, the caller reports it (as orphans.lua)
end
local n = 0
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'list' and kind ~= 'none' then
  local item = redis.call('LPOP', KEYS[1])
  while item do
    local reason = 'recovered from dead worker ' .. ARGV[1] .. ', but its queue key ' .. KEYS[2]
      .. ' holds a ' .. kind .. ', not a list'
    redis.call('RPUSH', KEYS[4], dead_letter_entry(KEYS[2], item, reason, ARGV[3], ARGV[4]))
    n = n + 1
    item = redis.call('LPOP', KEYS[1])
  end
  return n
end
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  n = n + 1
end
local wake = redis.call('TYPE', KEYS[3])['ok']
if n > 0 and (wake == 'list' or wake == 'none') then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[2]), -1)
end
return n
