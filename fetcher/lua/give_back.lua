-- Give back what this worker cannot receive: every payload in one processing list that the
-- worker does not hold goes back to the HEAD of its queue, order preserved, with a wake token.
-- Held payloads are named by their SHA-1 (one per held copy), so nothing large travels.
-- KEYS[1] processing, KEYS[2] queue, KEYS[3] wake.  ARGV: wake bound, sha1_1..sha1_n.
-- Returns how many went back.
local refused = queue_refusal(KEYS[2])
if refused then
  return refused
end
local held = {}
for i = 2, #ARGV do
  held[ARGV[i]] = (held[ARGV[i]] or 0) + 1
end
local back = {}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local sha = redis.sha1hex(item)
  if (held[sha] or 0) > 0 then
    held[sha] = held[sha] - 1
  else
    back[#back + 1] = item
  end
end
for i = #back, 1, -1 do
  redis.call('LPUSH', KEYS[2], back[i])  -- pushed before it leaves: nothing is lost
  redis.call('LREM', KEYS[1], 1, back[i])  -- equal payloads are interchangeable
end
if #back > 0 then
  wake_up(KEYS[3], ARGV[1])
end
return #back
