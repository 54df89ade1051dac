-- Move everything in one processing list back to the HEAD of its queue, order preserved.
-- A queue key of the wrong type is refused before anything moves (the caller dead-letters
-- those jobs instead).
-- KEYS[1] processing, KEYS[2] queue, KEYS[3] wake.  ARGV[1] wake bound.  Returns the count.
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'list' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE queue key ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a list')
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
local wake = redis.call('TYPE', KEYS[3])['ok']
if moved > 0 and (wake == 'list' or wake == 'none') then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[1]), -1)
end
return moved
