-- Batched fetch, reliable or fast (ARGV[6]). Reliable: for the queues in priority order, move up
-- to ARGV[1] items in total from the head of each queue to the tail of its processing list, and
-- at most ARGV[2] bytes of payload (but always at least one item: a batch bounded in jobs and in
-- bytes, so its reply fits what the server lets a client receive). Atomic: an item is in exactly one of the two lists at
-- any time, so a lost reply leaves it recoverable, never lost.
-- An item larger than ARGV[3] bytes is never returned: it goes, server-side, to the dead-letter
-- list with the reason (a reply that large might never reach the worker, forever).
-- Fast (at-most-once, Resque semantics): the same bounds, but destructive pops and no processing
-- lists.
-- KEYS: queue_1..queue_n, (reliable only: processing_1..processing_n), dead list.
-- ARGV: max items, byte budget, oversize, now (unix s), worker id, 'reliable' | 'fast'.
-- Returns {{queue_index, {items...}}, ...}.
local reliable = ARGV[6] == 'reliable'
local n = reliable and (#KEYS - 1) / 2 or #KEYS - 1
local dead = KEYS[#KEYS]
local remaining, budget, oversize = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
-- Redis does not roll a failed script back: refuse before popping anything if a processing
-- list could not take the items.
for i = n + 1, reliable and 2 * n or n do
  local fits, kind = holds(KEYS[i], 'list')
  if not fits then
    return redis.error_reply('WRONGTYPE processing list ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
local function dead_letter(queue, item)
  redis.call('RPUSH', dead, dead_letter_entry(queue, item,
    'undecodable payload: payload of ' .. #item .. ' bytes exceeds the limit of '
      .. oversize .. ' (dead-lettered by the server, never sent to the worker)',
    ARGV[4], ARGV[5]))
end
-- Move items[from..to] (the head of queue i) out in one LPOP and, reliable, chunked RPUSHes.
local function take(i, items, from, to)
  redis.call('LPOP', KEYS[i], to - from + 1)
  if reliable then
    for s = from, to, 1000 do
      redis.call('RPUSH', KEYS[n + i], unpack(items, s, math.min(s + 999, to)))
    end
  end
end
local out, bytes, taken, full = {}, 0, 0, false
for i = 1, n do
  if remaining <= 0 or full then break end
  local batch, again = {}, true
  while again and remaining > 0 and not full do
    again = false  -- read again only after dead-lettering made room in this slice
    local items = redis.call('LRANGE', KEYS[i], 0, remaining - 1)
    local run_from = 1  -- items[run_from..j-1] fit and are still at the queue's head
    for j = 1, #items + 1 do
      local item = items[j]
      local size = item and #item or 0
      local oversized = item and size > oversize
      local stop = item and not oversized and taken > 0 and bytes + size > budget
      if not item or oversized or stop then
        if j > run_from then
          take(i, items, run_from, j - 1)
        end
        if not item or stop then
          full = stop
          break
        end
        redis.call('LPOP', KEYS[i])  -- the oversized one, now at the head: never sent
        dead_letter(KEYS[i], item)
        run_from, again = j + 1, true
      else
        batch[#batch + 1] = item
        bytes, taken, remaining = bytes + size, taken + 1, remaining - 1
      end
    end
  end
  if #batch > 0 then
    out[#out + 1] = {i, batch}
  end
end
return out
