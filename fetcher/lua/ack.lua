-- Ack many jobs in one call: remove each payload (one occurrence) from its processing list.
-- KEYS: the processing lists involved.  ARGV: for each key in order, a count n then n payloads.
-- Returns how many were still there (a job recovered by someone else is simply absent).
local removed, k, i = 0, 1, 1
while i <= #ARGV do
  local n, key = tonumber(ARGV[i]), KEYS[k]
  for j = i + 1, i + n do
    removed = removed + redis.call('LREM', key, 1, ARGV[j])
  end
  i, k = i + n + 1, k + 1
end
return removed
