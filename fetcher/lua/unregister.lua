-- Leave the registry, unless another process now holds this worker id (then touch nothing:
-- its registration and lease are not ours to remove).
-- KEYS[1] lease hash, KEYS[2] heartbeat, KEYS[3] registry set, KEYS[4] worker-queues set.
-- ARGV: token ('' for a fetcher that never registered), worker id.  Returns 1 left, 0 refused.
local held = redis.call('HGET', KEYS[1], 'token')
if held and held ~= ARGV[1] then
  return 0
end
redis.call('SREM', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
return 1
