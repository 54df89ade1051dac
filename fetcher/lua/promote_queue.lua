-- Redis Cluster: promote the due jobs of ONE queue's scheduled zset (in the queue's slot) to the
-- tail of that queue, with a wake token (promote_due). A member whose payload names another
-- queue (or none) is dead-lettered with the reason, never pushed to a key this call did not
-- declare. A queue key of another type than a list: every due member is dead-lettered with the
-- reason.
-- KEYS: scheduled zset of the queue, the queue, its wake list, its dead-letter list.
-- ARGV: now, limit, wake bound.  Returns the number promoted.
local function not_this_queue(q)
  if q ~= KEYS[2] then
    return 'scheduled payload names ' .. q .. ', not ' .. KEYS[2] .. ' whose zset holds it'
  end
end
local moved = promote_due(KEYS[1], KEYS[4], ARGV[1], ARGV[2], KEYS[2], not_this_queue)
if moved > 0 then
  wake_up(KEYS[3], ARGV[3])
end
return moved
