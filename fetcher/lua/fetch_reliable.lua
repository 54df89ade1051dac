-- Reliable batched fetch: for the queues in priority order, move up to ARGV[1] items in total
-- from the head of each queue to the tail of its processing list. Atomic: an item is in exactly
-- one of the two lists at any time, so a lost reply leaves it recoverable, never lost.
-- KEYS: queue_1..queue_n, processing_1..processing_n.  Returns {{queue_index, {items...}}, ...}.
local n = #KEYS / 2
local remaining = tonumber(ARGV[1])
-- Redis does not roll a failed script back: refuse before popping anything if a processing
-- list could not take the items.
for i = n + 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'list' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE processing list ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
local out = {}
for i = 1, n do
  if remaining <= 0 then break end
  local items = redis.call('LPOP', KEYS[i], remaining)
  if items then
    for s = 1, #items, 1000 do
      redis.call('RPUSH', KEYS[n + i], unpack(items, s, math.min(s + 999, #items)))
    end
    out[#out + 1] = {i, items}
    remaining = remaining - #items
  end
end
return out
