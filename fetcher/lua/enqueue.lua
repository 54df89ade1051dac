-- Enqueue many jobs at once: immediate ones appended to their queue (with wake tokens), delayed
-- ones added to the scheduled set, Resque queue names added to the Resque set. Every key is
-- type-checked before anything is written (Redis does not roll a failed script back): a queue key
-- that holds another type than a list (also for a delayed job, which would fail at promotion)
-- is refused with nothing written.
-- KEYS: scheduled zset, Resque queue-name set, queue_1..queue_n, wake_1..wake_n.
-- ARGV: wake bound, n, m, Resque names 1..m, then per job: queue index (1..n), due ('' = now),
--       payload.
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local first_job = 4 + m
local function refuse_unless(key, wanted)
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= wanted and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE refusing to enqueue: key ' .. key .. ' holds a ' .. kind
      .. ', not a ' .. wanted .. ' (nothing was written)')
  end
end
local delayed = false
for j = first_job, #ARGV, 3 do
  if ARGV[j + 1] ~= '' then delayed = true end
end
local checks = {}
for i = 1, 2 * n do checks[#checks + 1] = {KEYS[2 + i], 'list'} end
if delayed then checks[#checks + 1] = {KEYS[1], 'zset'} end
if m > 0 then checks[#checks + 1] = {KEYS[2], 'set'} end
for _, check in ipairs(checks) do
  local refused = refuse_unless(check[1], check[2])
  if refused then return refused end
end
for i = 4, 3 + m do
  redis.call('SADD', KEYS[2], ARGV[i])
end
local woken = {}
for j = first_job, #ARGV, 3 do
  local q = tonumber(ARGV[j])
  if ARGV[j + 1] == '' then
    redis.call('RPUSH', KEYS[2 + q], ARGV[j + 2])
    woken[q] = (woken[q] or 0) + 1
  else
    redis.call('ZADD', KEYS[1], ARGV[j + 1], ARGV[j + 2])
  end
end
local bound = tonumber(ARGV[1])
for q, count in pairs(woken) do
  local wake = KEYS[2 + n + q]
  for _ = 1, math.min(count, bound) do
    redis.call('RPUSH', wake, '1')
  end
  redis.call('LTRIM', wake, -bound, -1)
end
return #ARGV - first_job + 1
