-- Return fetched payloads to the HEAD of their queue in their original order, each only if it is
-- still in the processing list (check '1'), and leave a wake token. Each payload is pushed
-- before it leaves the processing list, and a queue key of the wrong type is refused before
-- anything is written (Redis does not roll a failed script back), so nothing is lost; the caller
-- dead-letters the jobs of a queue it cannot requeue to.
-- KEYS[1] processing, KEYS[2] queue, KEYS[3] wake.  ARGV: check, wake bound, raw_1..raw_n.
local refused = queue_refusal(KEYS[2])
if refused then
  return refused
end
local moved = 0
for i = #ARGV, 3, -1 do
  if ARGV[1] ~= '1' or redis.call('LPOS', KEYS[1], ARGV[i]) then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    if ARGV[1] == '1' then
      redis.call('LREM', KEYS[1], 1, ARGV[i])
    end
    moved = moved + 1
  end
end
if moved > 0 then
  wake_up(KEYS[3], ARGV[2])
end
return moved
