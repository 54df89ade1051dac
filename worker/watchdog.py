"""The fetch watchdog: notice a fetch that cannot still be legitimately running, reset, go on.

The worker's fetch loop runs each fetch inside :meth:`FetchWatchdog.watching`; the watchdog's
own loop (:meth:`FetchWatchdog.run`, one task in the worker's TaskGroup) judges the fetch in
progress and, when it is stuck, resets the connection and expires that fetch's scope, so the
fetch loop fetches again. ``stalled`` says why while it lasts (``/healthz`` reports it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from steadfetch.fetcher import ConnectionState, RedisConnection

log = logging.getLogger("worker")


class FetchWatchdog:
    """Watches the fetches of one worker on ``conn``; ``limit`` seconds (0: disabled)."""

    def __init__(self, conn: RedisConnection, queues: Sequence[str], limit: float) -> None:
        self.conn = conn
        self.queues = list(queues)
        self.limit = limit
        #: Why the fetch loop counts as stuck now (None: it is progressing).
        self.stalled: str | None = None
        self.stalls = 0
        # When the current fetch began (None: not inside a fetch), and its scope.
        self._since: float | None = None
        self._scope: asyncio.Timeout | None = None

    @contextmanager
    def watching(self) -> Iterator[asyncio.Timeout]:
        """Around one fetch: the scope to enter around it, which the watchdog expires when it
        resets that fetch (the fetch then raises TimeoutError with ``scope.expired()``)."""
        self._since = asyncio.get_running_loop().time()
        scope = self._scope = asyncio.timeout(None)
        try:
            yield scope
        finally:
            self._scope = None
            self._since = None

    def progressed(self) -> None:
        """A fetch returned: whatever stall was reported is over."""
        if self.stalled is not None:
            log.warning("fetch loop is making progress again")
            self.stalled = None

    async def run(self) -> None:
        """Notice a fetch that cannot still be legitimately running, say so, reset, fetch again.

        A fetch blocks at most ``block_timeout`` server-side and the client gives up after its
        read timeout; during an outage every attempt fails within its timeouts and the next one
        is scheduled (``retry_next_at``). A fetch older than the limit is stuck when the
        connection claims to be CONNECTED, or when it is RECONNECTING but no attempt has ended
        for longer than the limit (a retry that hangs on a half-open socket with no read
        timeout): exactly the silent lock-up operators saw. Each stuck fetch is reset once; the
        fetch that replaces it is judged afresh, so a hang that repeats is reset again.
        """
        limit = self.limit
        if limit == 0:
            log.warning(
                "watchdog disabled (--watchdog-timeout 0): a stuck fetch loop will go unnoticed. "
                "This is unsafe and meant only for chaos proofs."
            )
            return
        loop = asyncio.get_running_loop()
        period = min(1.0, limit / 4)
        reset_since: float | None = None  # the start of the fetch last reset
        awake_since = loop.time()  # time this process spent frozen is nobody's fault
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            if loop.time() - due > period:
                # This loop itself woke up late: the process was frozen (SIGSTOP, a VM pause) or
                # the event loop blocked. A fetch did not hang meanwhile; judge it from now on.
                awake_since = loop.time()
                continue
            since = self._since
            if since is None or since == reset_since:
                continue
            stuck_for = loop.time() - max(since, awake_since)
            why = self._stuck_because(limit) if stuck_for > limit else None
            if why is None:
                continue
            reset_since = since
            self.stalls += 1
            self.stalled = (
                f"fetch from queues [{', '.join(self.queues)}] made no progress for "
                f"{stuck_for:.1f} s (limit {limit:.1f} s = block timeout + read timeout + margin) "
                f"{why}"
            )
            log.error("watchdog: %s; resetting the connection and fetching again", self.stalled)
            await self.conn.reset()
            scope = self._scope
            if scope is not None and not scope.expired():
                scope.reschedule(loop.time())

    def _stuck_because(self, limit: float) -> str | None:
        """Why a fetch older than ``limit`` cannot still be legitimate, or None if it can."""
        state, stats = self.conn.state, self.conn.stats
        if state is ConnectionState.CONNECTED:
            return f"while Redis {self.conn.endpoint} counted as connected"
        if state is ConnectionState.RECONNECTING:
            # The last attempt began when its wait ended (or, before any wait, when it failed).
            began = stats.retry_next_at or stats.last_error_at
            if began is not None and (silent := time.time() - began) > limit:
                return (
                    f"while Redis {self.conn.endpoint} was reconnecting and no attempt had ended "
                    f"for {silent:.1f} s (a retry hanging on a half-open connection)"
                )
        return None
