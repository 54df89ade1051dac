-- Redis Cluster: after recover_queue.lua emptied a dead worker's lists, remove it from the
-- registry, unless it came back (a heartbeat or a lease again): then touch nothing.
-- KEYS: registry set, heartbeat, lease hash, worker-queues set (one slot: the {prefix} tag).
-- ARGV: worker id.  Returns 1 removed, 0 left alone.
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
redis.call('DEL', KEYS[4])
return redis.call('SREM', KEYS[1], ARGV[1])
