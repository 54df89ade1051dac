-- Move everything in one processing list back to the HEAD of its queue, order preserved, with a
-- wake token (give_back_list). A queue key of the wrong type is refused before anything moves
-- (the caller dead-letters those jobs instead), as is a processing key that is not a list.
-- KEYS[1] processing, KEYS[2] queue, KEYS[3] wake.  ARGV[1] wake bound.  Returns the count.
local refused = queue_refusal(KEYS[2])
if refused then
  return refused
end
local moved, kind = give_back_list(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
if not moved then
  return redis.error_reply('WRONGTYPE processing list ' .. KEYS[1] .. ' holds a ' .. kind)
end
return moved
