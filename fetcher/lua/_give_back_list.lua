-- Give a processing list back to its queue: every job moves to the HEAD of QUEUE, order
-- preserved, with a wake token on WAKE (at most BOUND). A queue key of another type cannot take
-- them back: each goes to the dead-letter list DEAD instead, its reason HOW ('recovered from dead
-- worker w1') and what the queue key holds (a failed LMOVE would stop the script, and with it
-- every recovery after it: one broken key must not take the fleet down). NOW (unix s) and
-- WORKER_ID (nil for none) go into the dead-letter entry.
-- Returns the number of jobs moved, or nil and its type when PROCESSING holds another type than
-- a list (left alone: the caller reports it).
local function give_back_list(processing, queue, wake, bound, dead, how, now, worker_id)
  local own, own_kind = holds(processing, 'list')
  if not own then
    return nil, own_kind
  end
  local n = 0
  local fits, kind = holds(queue, 'list')
  if not fits then
    local item = redis.call('LPOP', processing)
    while item do
      local reason = how .. ', but its queue key ' .. queue .. ' holds a ' .. kind .. ', not a list'
      redis.call('RPUSH', dead, dead_letter_entry(queue, item, reason, now, worker_id))
      n = n + 1
      item = redis.call('LPOP', processing)
    end
    return n
  end
  while redis.call('LMOVE', processing, queue, 'RIGHT', 'LEFT') do
    n = n + 1
  end
  if n > 0 then
    wake_up(wake, bound)
  end
  return n
end
