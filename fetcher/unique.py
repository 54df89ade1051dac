"""Queue protocol. Idempotent enqueue: a job id as the unit of uniqueness.

A job enqueued with ``unique_for=W`` reserves its id: ``steadfetch:unique:{id}`` is set, in the
same script that writes the job (``lua/enqueue.lua``), to ``token:n:W ms`` with a TTL of
:data:`HOLD` (plus the delay of a delayed job). While the reservation lives, another enqueue of
that id writes nothing and is told it was a duplicate. The enqueue call's own retry after a lost
reply finds its own token and reports success without writing again: a retried enqueue is safe
by construction.

The worker ends the reservation when it settles the job for good (ack, dead-letter): the key's
TTL becomes the window W (0: deleted at once). A retry keeps it (the job is scheduled). Jobs that
are never settled (purged, lost with Redis) release their id when :data:`HOLD` runs out.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from steadfetch.fetcher import cluster
from steadfetch.fetcher.codec import unique_window
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.job import Job
from steadfetch.fetcher.keys import Keys
from steadfetch.fetcher.scheduling import MAX_WAIT
from steadfetch.fetcher.scripts import LuaScript

#: How long a reservation lives without a settle (seconds): a job still queued after this long
#: (a backlog of a week) is no longer protected against a second enqueue of its id.
HOLD = 7 * 24 * 3600.0

RELEASE = LuaScript.from_source(
    "unique_release",
    f"local MAX_WAIT_MS = {round(MAX_WAIT * 1000)}\n"
    """
-- KEYS: reservations of settled jobs. Each value ends in ':window ms': the key lives that much
-- longer (0: deleted). A key that is gone or holds no such value is left alone, as is one of
-- another type (a per-job key: a WRONGTYPE here stopped the worker, exit 2).
for _, key in ipairs(KEYS) do
  local held = redis.call('TYPE', key).ok == 'string' and redis.call('GET', key)
  if held then
    local window = tonumber(string.match(held, ':(%d+)$'))
    if window and window > MAX_WAIT_MS then
      window = MAX_WAIT_MS  -- written by an older producer: PEXPIRE would refuse it
    end
    if window == 0 then
      redis.call('DEL', key)
    elseif window then
      redis.call('PEXPIRE', key, window)
    end
  end
end
return #KEYS
""",
)


class EnqueuedId(str):
    """A job id as :meth:`fetcher.Producer.enqueue` returns it: a ``str`` (so existing callers
    keep working) that also says whether the enqueue was a ``duplicate`` (nothing written: a job
    with this id was queued, scheduled, running or finished within its window)."""

    duplicate: bool

    def __new__(cls, job_id: str, *, duplicate: bool = False) -> EnqueuedId:
        made = super().__new__(cls, job_id)
        made.duplicate = duplicate
        return made


def call_token() -> str:
    """A fresh token for one enqueue call (its retries reuse it)."""
    return secrets.token_hex(8)


def milliseconds(seconds: float) -> int:
    """A window or hold for Redis: at most MAX_WAIT (``--unique-for 1e300`` or a job delayed by
    1e300 s made PEXPIRE refuse the script, and the release stopped the worker settling it)."""
    return max(0, round(min(seconds, MAX_WAIT) * 1000))


async def release(conn: RedisConnection, keys: Keys, jobs: Sequence[Job]) -> None:
    """End the reservations of ``jobs`` settled for good (no round trip when none has one)."""
    reserved = [
        (queue_key, keys.unique(job.id, queue_key))
        for job in jobs
        if unique_window(job.raw) is not None
        for queue_key in (keys.queue_key(job.queue),)
    ]
    # On a Redis Cluster reservations live in their queue's slot: one call per slot.
    for group in cluster.by_slot(keys, reserved, lambda pair: pair[0]):
        await conn.execute(
            f"releasing the id reservation of {len(group)} job(s)",
            RELEASE.bind([key for _, key in group], []),
        )
