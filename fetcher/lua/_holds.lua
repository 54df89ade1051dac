-- Whether KEY can be used as a WANTED ('list', 'set', ...): it holds one, or nothing yet. Also
-- returns the type it holds, for the reason a caller gives when it cannot.
local function holds(key, wanted)
  local kind = redis.call('TYPE', key)['ok']
  return kind == wanted or kind == 'none', kind
end
