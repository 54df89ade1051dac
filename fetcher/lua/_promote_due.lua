-- Promote what is due in one scheduled zset: up to LIMIT members with score <= NOW leave ZSET
-- for the queue their payload names ("queue": key), each appended to its tail and then passed
-- to PUSHED(q) (nil: nothing more to do). A member that cannot go to its queue is dead-lettered
-- to DEAD with the reason, never dropped, and the others are promoted: one bad entry never
-- fails the whole call. It cannot go when it names no queue (the entry then names FALLBACK), when
-- REFUSE(q) gives a reason (a key this call may not push to), or when the key holds another type
-- than a list. Checked before anything is written: Redis does not roll a failed script back.
-- Returns the number promoted.
local function promote_due(zset, dead, now, limit, fallback, refuse, pushed)
  local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, tonumber(limit))
  local moved = 0
  for _, member in ipairs(due) do
    local ok, body = pcall(cjson.decode, member)
    local q = ok and type(body) == 'table' and body['queue']
    local reason
    if type(q) ~= 'string' or q == '' then
      reason = 'scheduled payload names no queue'
    else
      reason = refuse(q)  -- first: q is touched only once this call may push to it
      local fits, kind = true, nil
      if not reason then
        fits, kind = holds(q, 'list')
      end
      if not fits then
        reason = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
      end
    end
    if reason then
      local queue = type(q) == 'string' and q or fallback
      redis.call('RPUSH', dead, dead_letter_entry(queue, member, reason, now))
    else
      redis.call('RPUSH', q, member)  -- before the ZREM: a failed script is not rolled back
      if pushed then
        pushed(q)
      end
      moved = moved + 1
    end
    redis.call('ZREM', zset, member)
  end
  return moved
end
