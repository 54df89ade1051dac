-- Give back the jobs of one processing list whose worker is gone for good: not registered, no
-- heartbeat, no lease. Recovery removes a dead worker from the registry; a zombie that then
-- fetched into its own lists before it found out and rejoined, and died in that window, leaves
-- such a list behind (fetcher/registry.py sweeps for them).
-- Given back as recover.lua does (give_back_list).
-- KEYS: processing list, its queue, heartbeat, lease, registry set, wake list, dead-letter list.
-- ARGV: worker id, wake bound, now (unix s).  Returns the number of jobs moved, or -1 when the
-- "processing list" holds another type than a list (left alone: the caller reports it).
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1
    or redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return 0
end
return give_back_list(KEYS[1], KEYS[2], KEYS[6], ARGV[2], KEYS[7],
  'orphaned by worker ' .. ARGV[1], ARGV[3]) or -1
