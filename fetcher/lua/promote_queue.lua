-- Redis Cluster: promote the due jobs of ONE queue's scheduled zset (in the queue's slot) to the
-- tail of that queue, with a wake token. A member whose payload names another queue (or none) is
-- dead-lettered with the reason, never pushed to a key this call did not declare. A queue key
-- of another type than a list: every due member is dead-lettered with the reason.
-- KEYS: scheduled zset of the queue, the queue, its wake list, its dead-letter list.
-- ARGV: now, limit, wake bound.  Returns the number promoted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local kind = redis.call('TYPE', KEYS[2])['ok']
local fits = kind == 'list' or kind == 'none'
local moved = 0
for _, member in ipairs(due) do
  local ok, body = pcall(cjson.decode, member)
  local q = ok and type(body) == 'table' and body['queue']
  local reason
  if type(q) ~= 'string' or q == '' then
    reason = 'scheduled payload names no queue'
  elseif q ~= KEYS[2] then
    reason = 'scheduled payload names ' .. q .. ', not ' .. KEYS[2] .. ' whose zset holds it'
  elseif not fits then
    reason = 'queue key ' .. q .. ' holds a ' .. kind .. ', not a list'
  end
  if reason then
    local queue = type(q) == 'string' and q or KEYS[2]
    redis.call('RPUSH', KEYS[4], dead_letter_entry(queue, member, reason, ARGV[1]))
  else
    redis.call('RPUSH', KEYS[2], member)  -- before the ZREM: a failed script is not rolled back
    moved = moved + 1
  end
  redis.call('ZREM', KEYS[1], member)
end
local wake = redis.call('TYPE', KEYS[3])['ok']
if moved > 0 and (wake == 'list' or wake == 'none') then
  redis.call('RPUSH', KEYS[3], '1')
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
end
return moved
