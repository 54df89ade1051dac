-- Give back the jobs of one processing list whose worker is gone for good: not registered, no
-- heartbeat, no lease. Recovery removes a dead worker from the registry; a zombie that then
-- fetched into its own lists before it found out and rejoined, and died in that window, leaves
-- such a list behind (fetcher/registry.py sweeps for them).
-- KEYS: processing list, its queue, heartbeat, lease, registry set, wake list.
-- ARGV: worker id, wake bound.  Returns the number of jobs moved to the HEAD of the queue.
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1
    or redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return 0
end
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  n = n + 1
end
if n > 0 then
  redis.call('RPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[2]), -1)
end
return n
