-- Fast (at-most-once) batched fetch: destructive pops of up to ARGV[1] items in total from the
-- queues in priority order. KEYS: queue_1..queue_n.  Returns {{queue_index, {items...}}, ...}.
local remaining = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  if remaining <= 0 then break end
  local items = redis.call('LPOP', KEYS[i], remaining)
  if items then
    out[#out + 1] = {i, items}
    remaining = remaining - #items
  end
end
return out
