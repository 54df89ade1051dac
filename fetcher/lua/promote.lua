-- Promote due scheduled jobs: up to ARGV[2] members with score <= ARGV[1] leave the zset and
-- are appended to the queue named in their payload ("queue": key), each with a wake token
-- (promote_due). A member that cannot go to its queue (it names none, names a key outside the
-- queue prefixes, or its queue key holds another type than a list) is dead-lettered with the
-- reason, never dropped, and the others are promoted: one bad entry never fails the whole call.
-- KEYS[1] scheduled zset, KEYS[2] dead list.
-- ARGV: now, limit, wake prefix, wake bound, queue key prefix, Resque queue key prefix.
local function outside_the_queue_prefixes(q)
  if q:sub(1, #ARGV[5]) ~= ARGV[5] and q:sub(1, #ARGV[6]) ~= ARGV[6] then
    return 'scheduled payload names ' .. q .. ', which is not a queue key'
  end
end
local function wake(q)
  wake_up(ARGV[3] .. q, ARGV[4])  -- a broken wake list costs a wake-up, not the job
end
return promote_due(KEYS[1], KEYS[2], ARGV[1], ARGV[2], KEYS[1], outside_the_queue_prefixes, wake)
