-- Redis Cluster: recovery of one dead worker's processing list for one queue, in that queue's
-- slot (recover.lua, which walks the registry, cannot run on a cluster: its keys span slots).
-- The caller found the worker registered with no heartbeat; this script moves its jobs only if
-- the worker's lease copy in this slot is gone too (it expires with the lease: a worker that
-- rejoined in between wrote a fresh one, and keeps its jobs). Given back as recover.lua does
-- (give_back_list). Every key it touches is in KEYS.
-- KEYS: processing list, queue, wake list, dead-letter list, lease copy.
-- ARGV: dead worker id, wake bound, now (unix s), caller worker id.  Returns the jobs moved,
-- or -1 when the processing key holds another type than a list (left alone).
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
return give_back_list(KEYS[1], KEYS[2], KEYS[3], ARGV[2], KEYS[4],
  'recovered from dead worker ' .. ARGV[1], ARGV[3], ARGV[4]) or -1  -- -1: as orphans.lua
