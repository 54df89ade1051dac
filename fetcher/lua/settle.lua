-- Move one fetched payload out of its processing list to a destination, only if it is still
-- there (so a retried call, or a job already recovered by someone else, never duplicates).
-- The destination is written before the payload leaves the processing list: Redis does not roll
-- a failed script back, so a write that fails (a key of the wrong type) must lose nothing.
-- KEYS[1] processing list, KEYS[2] destination, KEYS[3] wake list (used when ARGV[6] ~= '').
-- ARGV: raw, kind ('zadd'|'rpush'|'lpush'), score, value, check ('1' reliable, '0' fast),
--       wake ('' or the bound on the wake list), lease token ('' = unfenced), and ARGV[8] '1'
--       when this is a repeat of the same call (a lost reply, or --durability's WAIT timed out):
--       a destination holding the very value was written by the earlier attempt, so the call
--       moved the payload (1), and a fast-mode repeat writes nothing again (a dead-letter entry
--       holds its time and worker: no other settle writes the same bytes).
-- KEYS[4] the worker's lease hash. Returns -1 when the token no longer holds the lease (fenced).
if (ARGV[7] or '') ~= '' and redis.call('HGET', KEYS[4], 'token') ~= ARGV[7] then
  return -1
end
local check = ARGV[5] == '1'
local kind = ARGV[2]
local function written_before()
  if ARGV[8] ~= '1' then
    return false
  elseif kind == 'zadd' then
    return redis.call('ZSCORE', KEYS[2], ARGV[4]) ~= false
  end
  return redis.call('LPOS', KEYS[2], ARGV[4], 'RANK', kind == 'rpush' and -1 or 1) ~= false
end
if check and not redis.call('LPOS', KEYS[1], ARGV[1]) then
  return written_before() and 1 or 0
end
if not check and written_before() then
  return 1
end
if kind == 'zadd' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
elseif kind == 'rpush' then
  redis.call('RPUSH', KEYS[2], ARGV[4])
else
  redis.call('LPUSH', KEYS[2], ARGV[4])
end
if check then
  redis.call('LREM', KEYS[1], 1, ARGV[1])
end
if ARGV[6] ~= '' then
  wake_up(KEYS[3], ARGV[6])
end
return 1
