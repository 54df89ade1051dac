-- Ack many jobs in one call: remove each payload (one occurrence) from its processing list.
-- KEYS: the processing lists involved.  ARGV: for each key in order, a count n then n payloads.
-- Returns how many were still there (a job recovered by someone else is simply absent).
local removed, k, i = 0, 1, 1
while i <= #ARGV do
  local n, key = tonumber(ARGV[i]), KEYS[k]
  -- Usually the payloads are the oldest in the list, in fetch order: its head. Then one LTRIM
  -- removes exactly what an LREM per payload would (each LREM takes the first occurrence).
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
