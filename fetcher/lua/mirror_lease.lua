-- Redis Cluster: copy this worker's lease token into one queue's slot, so that a settle there is
-- fenced in the same script that touches the processing list (ack.lua, settle.lua read it).
-- Same TTL as the lease; written after every successful claim or beat.
-- KEYS[1] the queue's lease copy.  ARGV: token, ttl ms.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
