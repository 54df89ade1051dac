-- The dead-letter entry (docs/CONTRACTS.md), the Lua side of fetcher/deadletter.py: the same
-- fields, in one place. Redis scripts cannot import each other, so fetcher/scripts.py puts this
-- function in front of every script that calls it (the script's SHA covers both). No error,
-- no traceback, no attempt: a script dead-letters a payload that never reached a handler.
-- ``failed_at`` is unix seconds as text (an ARGV), ``worker_id`` nil for none.
local function dead_letter_entry(queue, raw, reason, failed_at, worker_id)
  return cjson.encode({
    queue = queue, raw = raw, reason = reason, error = cjson.null, traceback = cjson.null,
    attempts = 0, failed_at = tonumber(failed_at),
    worker_id = worker_id == nil and cjson.null or worker_id})
end
