"""The worker's heartbeat: written at a fixed rate, with the figures it carries kept fresh.

A slow link must not stretch the gaps between beats (a gap longer than the TTL makes other
workers take this one for dead and requeue its jobs), so :meth:`Heartbeat.run` beats on a fixed
schedule. After each beat it reads what the next one carries: the queue depths (for the
heartbeat itself, ``top`` and the live dashboard; never per job) and, after every reconnect
(a restarted Redis may come back with another config) and every :data:`EVICTION_EVERY` s (a
``CONFIG SET`` or a managed Redis's parameter change needs neither), Redis's
``maxmemory-policy``: a WARNING each time it becomes unsafe, not on every read.
:meth:`Heartbeat.unhealthy` says what ``/healthz`` should report about the beats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from steadfetch.fetcher import Admin, ConnectionEvent, ConnectionRestored, ConnectionState, Fetcher
from steadfetch.worker.config import WorkerConfig

log = logging.getLogger("worker")

#: Seconds between two reads of maxmemory-policy while connected (one CONFIG GET each).
EVICTION_EVERY = 10.0


class Heartbeat:
    """Beats for ``fetcher``'s worker with ``snapshot()`` as the payload, once ``started``."""

    def __init__(
        self,
        fetcher: Fetcher,
        config: WorkerConfig,
        snapshot: Callable[[], dict[str, Any]],
        started: asyncio.Event,
    ) -> None:
        self.fetcher = fetcher
        self.conn = fetcher.conn
        self.config = config
        self.ttl = config.heartbeat_ttl
        self.snapshot = snapshot
        self.started = started
        self.admin = Admin(fetcher.conn)
        #: Queue, scheduled and dead-letter counts as of the last beat.
        self.depths: dict[str, Any] = {}
        #: Redis's maxmemory-policy as last read (fetcher.Admin.eviction_policy).
        self.eviction: dict[str, Any] = {}
        self._eviction_due = True
        self._eviction_read_at = 0.0  # monotonic
        self._warned: str | None = None  # the note last warned about (None: not since a reconnect)
        self._last_beat = time.monotonic()
        # When the loop last woke up later than the TTL (frozen process, blocked event loop):
        # other workers may have taken this one for dead (unix s).
        self._stalled_at: float | None = None
        fetcher.conn.subscribe(self._on_connection_event)

    async def first(self) -> None:
        """The first beat and eviction-policy check, at start (retried through an outage)."""
        await self.fetcher.heartbeat(self.snapshot(), self.ttl)
        await self.check_eviction_policy()
        self._last_beat = time.monotonic()

    def _on_connection_event(self, event: ConnectionEvent) -> None:
        if isinstance(event, ConnectionRestored):
            self._eviction_due = True
            self._warned = None  # a restarted Redis: say it again if it is still unsafe

    async def check_eviction_policy(self) -> None:
        """Read maxmemory-policy; WARN when Redis may evict jobs or when it cannot be checked,
        once per change (and again after a reconnect), not at every read."""
        self._eviction_due = False
        self._eviction_read_at = time.monotonic()
        self.eviction = await self.admin.eviction_policy()
        note = None if self.eviction.get("safe") else str(self.eviction["note"])
        if note is not None and note != self._warned:
            log.warning("%s", note)
        self._warned = note

    async def run(self) -> None:
        """Beat at a fixed rate (see the module docstring).

        A wake-up later than the TTL means this process was frozen (SIGSTOP, a paused VM) or its
        event loop blocked: that is said at once. The beat itself then finds out whether this
        worker was presumed dead (fetcher.registry: WARNING, counted, rejoined)."""
        await self.started.wait()
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.config.heartbeat_interval, loop.time())
            await asyncio.sleep(due - loop.time())
            late = loop.time() - due
            if late > self.ttl:
                self._stalled_at = time.time()
                log.warning(
                    "worker %s: heartbeat loop stalled for %.1f s, past the heartbeat TTL of "
                    "%.1f s (process frozen or event loop blocked): other workers may have taken "
                    "it for dead and recovered its jobs",
                    self.fetcher.worker_id,
                    late + self.config.heartbeat_interval,
                    self.ttl,
                )
            began = loop.time()
            await self.fetcher.heartbeat(self.snapshot(), self.ttl)
            self._last_beat = time.monotonic()
            if self._eviction_due or time.monotonic() - self._eviction_read_at > EVICTION_EVERY:
                await self.check_eviction_policy()
            # For the next beat (and the dashboard): after the write, so it never delays one;
            # skipped when the write itself was slow (a slow link), where one more round trip
            # would push the next beat toward the TTL.
            if loop.time() - began < self.config.heartbeat_interval / 2:
                self.depths = await self.admin.depths(self.config.queues)

    def unhealthy(self) -> str | None:
        """Why the beats make this worker unhealthy, or None: for one TTL after the loop stalled
        past the TTL, or when no beat went out for too long while Redis counts as connected."""
        ttl, now = self.ttl, time.time()
        stalled = self._stalled_at
        if stalled is not None and now - stalled < ttl:
            return (
                f"heartbeat loop stalled past the heartbeat TTL of {ttl:.1f} s "
                f"{now - stalled:.1f} s ago (process frozen or event loop blocked)"
            )
        config = self.config
        beat_limit = (
            3 * config.heartbeat_interval + config.redis_retry_cap + config.read_timeout + 1.0
        )
        silent_for = time.monotonic() - self._last_beat
        connected = self.conn.state is ConnectionState.CONNECTED
        if self.started.is_set() and connected and silent_for > beat_limit:
            return (
                f"heartbeat loop made no progress for {silent_for:.1f} s (limit {beat_limit:.1f} s)"
                f" while Redis {self.conn.endpoint} counted as connected"
            )
        return None
