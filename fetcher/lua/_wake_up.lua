-- Leave one wake token on WAKE, keeping at most BOUND (losing a token loses no job). A wake key
-- of another type costs a wake-up, not the job: it is skipped, never an error after the jobs
-- were written (Redis does not roll a failed script back).
local function wake_up(wake, bound)
  if holds(wake, 'list') then
    redis.call('RPUSH', wake, '1')
    redis.call('LTRIM', wake, -tonumber(bound), -1)
  end
end
