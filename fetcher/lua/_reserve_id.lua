-- Reserve a job id (idempotent enqueue, fetcher/unique.py), for every script that writes a job
-- a producer could write too (enqueue, dead-letter retry): KEY is set to MINE .. WINDOW (MINE is
-- 'call token:job number:', WINDOW the ms the settled job keeps it) with a TTL of HOLD ms when
-- nobody holds it. Returns whether to write the job now, and the flag to report: 1 written (now,
-- or by this call's earlier attempt after a lost reply: the value starts with MINE), 0 a
-- duplicate (a job with this id is queued, scheduled, running or finished within its window).
local function reserve_id(key, mine, window, hold)
  local held = redis.call('GET', key)
  if held then
    return false, (string.sub(held, 1, #mine) == mine) and 1 or 0
  end
  redis.call('SET', key, mine .. window, 'PX', hold)
  return true, 1
end
