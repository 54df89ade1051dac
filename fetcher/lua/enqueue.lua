-- Enqueue many jobs at once: immediate ones appended to their queue (with wake tokens), delayed
-- ones added to the scheduled set, Resque queue names added to the Resque set. Every key is
-- type-checked before anything is written (Redis does not roll a failed script back): a queue key
-- that holds another type than a list (also for a delayed job, which would fail at promotion)
-- is refused with nothing written.
-- Idempotent enqueue (fetcher/unique.py): a job with a unique index reserves its id
-- (reserve_id, lua/_reserve_id.lua); when the id is already reserved the job is not written and
-- its flag is 0. The same call retried after a lost reply finds its own reservation and reports
-- 1 (written by its earlier attempt) without writing again, while a second call (or a second job
-- of this call) with that id gets 0.
-- KEYS: scheduled zset, Resque queue-name set, queue_1..queue_n, wake_1..wake_n,
--       unique_1..unique_u.
-- ARGV: wake bound, n, m, Resque names 1..m, call token, then per job: queue index (1..n),
--       due ('' = now), payload, unique index (0 = none), window ms, hold ms.
-- Returns one flag per job: 1 written (now or by this call's earlier attempt), 0 duplicate.
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local token = ARGV[4 + m]
local first_job = 5 + m
local stride = 6
local function refuse_unless(key, wanted)
  local fits, kind = holds(key, wanted)
  if not fits then
    return redis.error_reply('WRONGTYPE refusing to enqueue: key ' .. key .. ' holds a ' .. kind
      .. ', not a ' .. wanted .. ' (nothing was written)')
  end
end
local delayed = false
for j = first_job, #ARGV, stride do
  if ARGV[j + 1] ~= '' then delayed = true end
end
local checks = {}
for i = 1, 2 * n do checks[#checks + 1] = {KEYS[2 + i], 'list'} end
for i = 3 + 2 * n, #KEYS do checks[#checks + 1] = {KEYS[i], 'string'} end
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
local flags = {}
for j = first_job, #ARGV, stride do
  local q = tonumber(ARGV[j])
  local u = tonumber(ARGV[j + 3])
  local write, flag = true, 1
  if u > 0 then
    local mine = token .. ':' .. ((j - first_job) / stride + 1) .. ':'
    write, flag = reserve_id(KEYS[2 + 2 * n + u], mine, ARGV[j + 4], ARGV[j + 5])
  end
  flags[#flags + 1] = flag
  if not write then
    -- reserved: nothing to write
  elseif ARGV[j + 1] == '' then
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
return flags
