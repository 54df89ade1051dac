"""Promotion of due scheduled jobs (retries and delayed enqueues), shared by Fetcher and Admin."""

from __future__ import annotations

import time

from fetcher.connection import RedisConnection
from fetcher.keys import Keys
from fetcher.scripts import PROMOTE, WAKE_BOUND


async def promote_due(conn: RedisConnection, keys: Keys, limit: int = 1000) -> int:
    """Atomically move up to ``limit`` due members of the scheduled set to their queues."""
    args = [time.time(), limit, keys.wake(""), WAKE_BOUND]
    moved = await conn.execute(
        "promoting due scheduled jobs", lambda r: PROMOTE(r, [keys.scheduled, keys.dead], args)
    )
    return int(moved)
