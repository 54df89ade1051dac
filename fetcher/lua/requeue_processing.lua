-- Move everything in one processing list back to the HEAD of its queue, order preserved.
-- KEYS[1] processing, KEYS[2] queue, KEYS[3] wake.  ARGV[1] wake bound.  Returns the count.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
if moved > 0 then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[1]), -1)
end
return moved
