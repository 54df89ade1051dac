-- Ack many jobs in one call: remove each payload (one occurrence) from its processing list.
-- KEYS: the processing lists involved.  ARGV: key_index_1, raw_1, key_index_2, raw_2, ...
-- Returns how many were still there (a job recovered by someone else is simply absent).
local removed = 0
for i = 1, #ARGV, 2 do
  removed = removed + redis.call('LREM', KEYS[tonumber(ARGV[i])], 1, ARGV[i + 1])
end
return removed
