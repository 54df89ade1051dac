-- Promote due scheduled jobs: up to ARGV[2] members with score <= ARGV[1] leave the zset and
-- are appended to the queue named in their payload ("queue": key), with a wake token. A member
-- that cannot go to its queue (it names none, names a key outside the queue prefixes, or its
-- queue key holds another type than a list) is dead-lettered with the reason, never dropped, and
-- the others are promoted: one bad entry never fails the whole call.
-- KEYS[1] scheduled zset, KEYS[2] dead list.
-- ARGV: now, limit, wake prefix, wake bound, queue key prefix, Resque queue key prefix.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
local function is_list(key)
  local kind = redis.call('TYPE', key)['ok']
  return kind == 'list' or kind == 'none', kind
end
for _, member in ipairs(due) do
  local ok, body = pcall(cjson.decode, member)
  local q = ok and type(body) == 'table' and body['queue']
  local reason
  if type(q) ~= 'string' or q == '' then
    reason = 'scheduled payload names no queue'
  elseif q:sub(1, #ARGV[5]) ~= ARGV[5] and q:sub(1, #ARGV[6]) ~= ARGV[6] then
    reason = 'scheduled payload names ' .. q .. ', which is not a queue key'
  else
    local fits, kind = is_list(q)
    if not fits then
      reason = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
    end
  end
  -- Check before writing: Redis does not roll a failed script back.
  if reason then
    local queue = type(q) == 'string' and q or KEYS[1]
    redis.call('RPUSH', KEYS[2], dead_letter_entry(queue, member, reason, ARGV[1]))
  else
    redis.call('RPUSH', q, member)  -- before the ZREM: a failed script is not rolled back
    local wake = ARGV[3] .. q
    if is_list(wake) then  -- a broken wake list costs a wake-up, not the job
      redis.call('RPUSH', wake, '1')
      redis.call('LTRIM', wake, -tonumber(ARGV[4]), -1)
    end
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
return moved
