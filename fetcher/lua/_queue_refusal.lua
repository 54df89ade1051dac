-- The error reply refusing a call whose queue key holds another type than a list, or nil when
-- it can take jobs. Returned before anything is written (Redis does not roll a failed script
-- back); the caller dead-letters the jobs it could not give back (fetcher/errors.py,
-- WrongTypeError).
local function queue_refusal(queue)
  local fits, kind = holds(queue, 'list')
  if not fits then
    return redis.error_reply('WRONGTYPE queue key ' .. queue .. ' holds a ' .. kind .. ', not a list')
  end
end
