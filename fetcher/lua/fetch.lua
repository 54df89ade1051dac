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
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'list' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE processing list ' .. KEYS[i] .. ' holds a ' .. kind)
  end
end
local out, bytes, taken, full = {}, 0, 0, false
for i = 1, n do
  if remaining <= 0 or full then break end
  local items = redis.call('LRANGE', KEYS[i], 0, remaining - 1)
  local batch = {}
  for _, item in ipairs(items) do
    local size = #item
    if size > oversize then
      redis.call('LPOP', KEYS[i])  -- it is the head: everything before it has moved already
      redis.call('RPUSH', dead, cjson.encode({
        queue = KEYS[i], raw = item, error = cjson.null, traceback = cjson.null, attempts = 0,
        reason = 'undecodable payload: payload of ' .. size .. ' bytes exceeds the limit of '
          .. oversize .. ' (dead-lettered by the server, never sent to the worker)',
        failed_at = tonumber(ARGV[4]), worker_id = ARGV[5]}))
    elseif taken > 0 and bytes + size > budget then
      full = true
      break
    else
      if reliable then
        redis.call('LMOVE', KEYS[i], KEYS[n + i], 'LEFT', 'RIGHT')
      else
        redis.call('LPOP', KEYS[i])
      end
      batch[#batch + 1] = item
      bytes, taken, remaining = bytes + size, taken + 1, remaining - 1
    end
  end
  if #batch > 0 then
    out[#out + 1] = {i, batch}
  end
end
return out
