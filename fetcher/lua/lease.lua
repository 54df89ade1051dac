-- Claim or renew the lease on one worker id, and write the heartbeat with it: a worker id is
-- owned by one live process, named by a random token (fetcher/registry.py).
-- KEYS[1] lease hash, KEYS[2] heartbeat, KEYS[3] registry set, KEYS[4] worker-queues set.
-- ARGV: token, ttl ms, heartbeat body, hostname, pid, now (unix s), a token this claim may
--       replace ('' none: a holder found dead), mode ('claim'|'beat'), worker id, queue keys...
-- Returns {status, holder hash fields...}; status:
--   'ok'       renewed (the token held the lease), or claimed a free id;
--   'lapsed'   (beat) our lease had expired but nobody recovered our jobs: taken back;
--   'lost'     (beat) someone else holds the id, or recovery moved our jobs: presumed dead;
--              nothing was written (a zombie never re-registers by itself);
--   'held'     (claim) another token holds the id: the holder's fields follow.
local held = redis.call('HGET', KEYS[1], 'token')
local status = 'ok'
if held ~= ARGV[1] then
  if ARGV[8] == 'beat' and (held or redis.call('SISMEMBER', KEYS[3], ARGV[9]) == 0) then
    return {'lost', unpack(redis.call('HGETALL', KEYS[1]))}
  elseif ARGV[8] == 'beat' then
    status = 'lapsed'
  elseif held and held ~= ARGV[7] then
    return {'held', unpack(redis.call('HGETALL', KEYS[1]))}
  else
    status = 'claimed'
  end
end
-- The first write is one Redis refuses under OOM (SET, not DEL): after a script's first write
-- Redis lets the rest through, so a Redis over maxmemory refuses the whole call, cleanly.
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
if status ~= 'ok' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'hostname', ARGV[4], 'pid', ARGV[5],
             'since', ARGV[6])
end
redis.call('HSET', KEYS[1], 'renewed_at', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[9])
for i = 10, #ARGV do
  redis.call('SADD', KEYS[4], ARGV[i])
end
return {status == 'claimed' and 'ok' or status}
