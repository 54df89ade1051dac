"""Queue protocol.

Scheduling: when a failed job runs again (:func:`job_backoff`) and the promotion of due
scheduled jobs (retries and delayed enqueues), shared by Fetcher and Admin."""

from __future__ import annotations

import time
from collections.abc import Sequence

from steadfetch.fetcher import cluster
from steadfetch.fetcher.connection import RedisConnection
from steadfetch.fetcher.keys import Keys
from steadfetch.fetcher.scripts import PROMOTE, WAKE_BOUND

#: 2.0 ** 1023 is the largest power of two a float holds; past it ``2.0 ** n`` raises.
_MAX_EXPONENT = 1023
#: No retry waits longer than this, whatever ``cap`` says (an infinite cap would write an
#: ``inf`` score: a job that never runs again). Ten years.
MAX_WAIT = 10 * 365 * 86400.0


def job_backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before a job that failed attempt number ``attempt`` (1-based) runs again:
    ``base * 2 ** (attempt - 1)``, at most ``cap``.

    Total over every input, because its inputs come from payloads: an attempt counter of any size
    (a payload may carry ``10**30``; days of failures at the cap with a high ``max_attempts``
    reach 1025) gives ``cap``, never an OverflowError; an attempt below 1 counts as 1. The result
    is always a finite number in ``[0, MAX_WAIT]`` (a NaN or negative ``base`` gives 0).
    """
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    wait = min(cap, base * 2.0**exponent, MAX_WAIT)  # base * 2.0**1023 is at worst inf
    return wait if wait >= 0 else 0.0  # False for NaN too


async def promote_due(
    conn: RedisConnection, keys: Keys, limit: int = 1000, queue_keys: Sequence[str] = ()
) -> int:
    """Atomically move up to ``limit`` due members of the scheduled set to their queues.

    A member that cannot go to its queue (it names none, names a key that is not a queue, or its
    queue key holds another type than a list) is dead-lettered by the script with the reason;
    the others are promoted: one bad entry never stops promotion, nor the worker.

    On a Redis Cluster each queue has its own scheduled zset: those of ``queue_keys`` are
    promoted, one call per queue (:func:`fetcher.cluster.promote`).
    """
    if keys.cluster:
        return await cluster.promote(conn, keys, queue_keys, limit)
    args = [
        time.time(),
        limit,
        keys.wake(""),
        WAKE_BOUND,
        f"{keys.prefix}:queue:",
        f"{keys.resque_prefix}:queue:",
    ]
    moved = await conn.execute(
        "promoting due scheduled jobs", lambda r: PROMOTE(r, [keys.scheduled, keys.dead], args)
    )
    return int(moved)
