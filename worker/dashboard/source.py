"""``top``'s data source: heartbeats and queue figures read through ``fetcher.Admin``.

The connection owner is ``top``'s own, with a short retry cap so ``top`` notices a recovered
Redis within about a second; its live state (``.state``, ``.stats``) is what the connection
panel shows during an outage, while :meth:`FetcherSource.read` is still retrying.
"""

from __future__ import annotations

import time
from typing import Any

from steadfetch.fetcher import (
    Admin,
    ConnectionEvent,
    ConnectionRestored,
    RedisConnection,
    RetryPolicy,
)
from steadfetch.fetcher.state import stats_fields
from steadfetch.worker.dashboard.render import Cluster, Link

#: top's own retry policy: frequent attempts (it is one read-only client), capped low.
TOP_RETRY = RetryPolicy(base=0.2, cap=1.0)


def cluster_from_status(status: dict[str, Any], read_at: float) -> Cluster:
    """``Admin.summary()`` (``queues``, ``scheduled``, ``dead``, ``in_processing``, at most so
    many live ``workers``, ``more_workers``, ``stale_workers``) or ``Admin.status()`` (with
    ``processing`` per worker instead) as the top view's :class:`Cluster`."""
    in_processing = status.get("in_processing")
    if in_processing is None:
        in_processing = sum(int(n) for n in (status.get("processing") or {}).values())
    return Cluster(
        workers=list(status.get("workers") or ()),
        queues=dict(status.get("queues") or {}),
        in_processing=int(in_processing),
        scheduled=status.get("scheduled"),
        dead=status.get("dead"),
        read_at=read_at,
        more_workers=int(status.get("more_workers") or 0),
        stale_workers=int(status.get("stale_workers") or 0),
    )


class FetcherSource:
    """A :class:`worker.dashboard.top.ClusterSource` over one ``RedisConnection``."""

    def __init__(self, conn: RedisConnection) -> None:
        self.conn = conn
        self.admin = Admin(conn)
        self._recovered_at: float | None = None
        self._unsubscribe = conn.subscribe(self._on_event)

    @classmethod
    def from_url(cls, url: str) -> FetcherSource:
        """Raises ``fetcher.ConfigurationError`` (saying what to fix) for a bad URL."""
        return cls(RedisConnection.from_url(url, retry=TOP_RETRY, name="steadfetch-top"))

    def _on_event(self, event: ConnectionEvent) -> None:
        if isinstance(event, ConnectionRestored):
            self._recovered_at = event.at

    def link(self) -> Link:
        """The connection owner's live state, from its stats' fields (the same the heartbeat
        carries: :func:`fetcher.state.stats_fields`)."""
        return Link.from_snapshot(
            {
                "connection_state": self.conn.state.value,
                **stats_fields(self.conn.stats),
                "recovered_at": self._recovered_at,
            }
        )

    async def read(self) -> Cluster:
        # Bounded replies and a bounded table with any number of ghost registrations.
        status = await self.admin.summary()
        return cluster_from_status(status, time.time())

    async def aclose(self) -> None:
        self._unsubscribe()
        await self.conn.close()
