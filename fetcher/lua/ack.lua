-- Ack many jobs in one call: remove each payload (one occurrence) from its processing list.
-- KEYS[1] the worker's lease hash, then the processing lists involved.  ARGV[1] the lease token
-- the acks are sent under ('' = unfenced), then for each list in order a count n and n payloads.
-- Returns how many were still there (a job recovered by someone else is simply absent), or -1
-- when the token no longer holds the lease (fenced: a presumed-dead worker removes nothing).
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return -1
end
local removed, k, i = 0, 2, 2
while i <= #ARGV do
  local n, key = tonumber(ARGV[i]), KEYS[k]
  -- Usually the payloads are the oldest in the list, in fetch order: its head. Then one LTRIM
  -- removes exactly what an LREM per payload would (each LREM takes the first occurrence).
  -- Earns its place (issue 13; measured 2026-11-29, Redis commandstats): acking 100 payloads at
  -- the head of a 150-long list costs Redis 115-125 us this way, 160-300 us with an LREM each.
  local head = redis.call('LINDEX', key, 0) == ARGV[i + 1]
  if head then
    local items = redis.call('LRANGE', key, 0, n - 1)
    head = #items == n
    for j = 2, (head and n or 0) do
      if items[j] ~= ARGV[i + j] then
        head = false
        break
      end
    end
  end
  if head then
    redis.call('LTRIM', key, n, -1)
    removed = removed + n
  else
    for j = i + 1, i + n do
      removed = removed + redis.call('LREM', key, 1, ARGV[j])
    end
  end
  i, k = i + n + 1, k + 1
end
return removed
