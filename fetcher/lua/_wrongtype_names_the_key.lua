-- A WRONGTYPE inside a script names the command and the key: Redis's own reply ("Operation
-- against a key holding the wrong kind of value") names neither, and a script touches many
-- keys. fetcher/scripts.py puts this in front of every script that calls redis.call: from here
-- on `redis` is a local view of the real one whose `call` runs the command with redis.pcall and
-- raises any error reply again, unchanged (OOM, BUSY, READONLY... keep the prefix that
-- fetcher/failures.py classifies), except that a WRONGTYPE becomes
-- 'WRONGTYPE ZADD refused: key steadfetch:scheduled holds a string'.
-- Cost: about 0.2 us a call (measured 2026-11-30, Redis commandstats, ack.lua removing 100
-- payloads by LREM: 233-282 us a call without this, 252-302 us with it; by LTRIM: within noise).
local redis = setmetatable({}, {__index = redis})
-- Commands whose first two arguments are keys, by the type both must hold.
local TWO_KEYS = {LMOVE = 'list', RPOPLPUSH = 'list', SMOVE = 'set'}
function redis.call(...)
  local reply = redis.pcall(...)
  if type(reply) ~= 'table' or not reply.err then
    return reply
  end
  if string.sub(reply.err, 1, 10) == 'WRONGTYPE ' then
    local command, key, second = ...
    local name = string.upper(command)
    local kind = redis.pcall('TYPE', key)['ok']
    if TWO_KEYS[name] and (kind == TWO_KEYS[name] or kind == 'none') then
      key = second  -- the first key fits: the second is the one
      kind = redis.pcall('TYPE', key)['ok']
    end
    reply.err = 'WRONGTYPE ' .. name .. ' refused: key ' .. tostring(key) .. ' holds a '
      .. tostring(kind)
  end
  error(reply)
end
