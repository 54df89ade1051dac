-- Read a slice of a processing list for adoption, bounded in items (ARGV[2]) and bytes
-- (ARGV[3], but at least one item), from index ARGV[1]. An item larger than ARGV[4] bytes is
-- not returned: it moves, server-side, to the dead-letter list with the reason (the caller
-- passes a limit that no job it holds can exceed, so only an orphan can go).
-- KEYS[1] processing list, KEYS[2] dead list.
-- ARGV: start, max items, byte budget, oversize, queue key, now, worker id, reason.
-- Returns {next start, 1 if the list ends there else 0, {items...}}.
local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local budget, oversize = tonumber(ARGV[3]), tonumber(ARGV[4])
local items = redis.call('LRANGE', KEYS[1], start, start + count - 1)
local out, bytes, index, ended = {}, 0, start, #items < count
for _, item in ipairs(items) do
  local size = #item
  if size > oversize then
    redis.call('LREM', KEYS[1], 1, item)  -- equal payloads are interchangeable
    redis.call('RPUSH', KEYS[2], dead_letter_entry(ARGV[5], item,
      'undecodable payload: payload of ' .. size .. ' bytes ' .. ARGV[8]
        .. ' (dead-lettered by the server, never sent to the worker)',
      ARGV[6], ARGV[7]))
  elseif #out > 0 and bytes + size > budget then
    return {index, 0, out}
  else
    out[#out + 1] = item
    bytes, index = bytes + size, index + 1
  end
end
return {index, ended and 1 or 0, out}
