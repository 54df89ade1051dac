"""Realistic heartbeat-shaped snapshots, for the screenshots and the render tests.

``NOW`` is a fixed clock so the images and the asserted text do not change between runs.
"""

from __future__ import annotations

from typing import Any

from steadfetch.worker.dashboard.render import Cluster, Link

NOW = 1_795_773_600.0  # 2026-11-27 10:00:00 UTC
ENDPOINT = "127.0.0.1:6379/0"
OUTAGE_LINE = (
    "Redis 127.0.0.1:6379/0 unreachable while fetching from queues [high, default]: "
    "ConnectionRefusedError [Errno 111] Connection refused (attempt 7, down 12.4 s, "
    "retrying in 1.6 s)"
)
JOB_ERROR_LINE = "job 4f1c (task resize_image) failed: TimeoutError: job exceeded 30.0 s"

THROUGHPUT = [140.0 + 30 * ((i * 7) % 11) / 11 for i in range(45)] + [0.0] * 15


def heartbeat(**overrides: Any) -> dict[str, Any]:
    """A connected, busy worker's heartbeat (CONTRACTS.md); ``overrides`` replace keys."""
    snap: dict[str, Any] = {
        "worker_id": "web-1-8123",
        "hostname": "web-1",
        "pid": 8123,
        "started_at": NOW - 3725,
        "heartbeat_at": NOW - 1.2,
        "version": "0.1.0",
        "queues": ["high", "default"],
        "mode": "reliable",
        "concurrency": 20,
        "in_flight": 12,
        "processed": 482_113,
        "failed": 37,
        "retried": 29,
        "dead_lettered": 8,
        "connection_state": "connected",
        "outages": 2,
        "outage_since": None,
        "last_error": None,
        "last_error_at": None,
        "jobs_per_second": 153.4,
        "latency_p50_ms": 12.5,
        "latency_p99_ms": 88.0,
        "rss_bytes": 85_262_336,
        "queue_depths": {"high": 3, "default": 1_204},
        "scheduled": 17,
        "dead_letter": 8,
        "recovered_jobs": 3,
        "presumed_dead": 0,
        "late_settles": 0,
        "failovers": 1,
        "primary": "10.0.0.7:6379",
    }
    snap.update(overrides)
    return snap


def outage_heartbeat(**overrides: Any) -> dict[str, Any]:
    """The same worker 12.4 s into a Redis outage, at its 7th reconnect attempt."""
    base = heartbeat(
        connection_state="reconnecting",
        outages=3,
        outage_since=NOW - 12.4,
        retry_attempt=7,
        retry_next_at=NOW - 0.2 + 1.6,
        outage_operation="fetching from queues [high, default]",
        outage_cause="ConnectionRefusedError [Errno 111] Connection refused",
        last_error=OUTAGE_LINE,
        last_error_at=NOW - 0.2,
        in_flight=4,
        jobs_per_second=0.0,
        recent_errors=[
            {"at": NOW - 40.0, "line": JOB_ERROR_LINE},
            {"at": NOW - 0.2, "line": OUTAGE_LINE},
        ],
    )
    base.update(overrides)
    return base


def recovering_heartbeat(**overrides: Any) -> dict[str, Any]:
    """Connected again 4 s ago after the outage."""
    base = heartbeat(
        outages=3,
        last_error=OUTAGE_LINE,
        last_error_at=NOW - 5.0,
        recovered_at=NOW - 4.0,
        jobs_per_second=61.0,
    )
    base.update(overrides)
    return base


def cluster(*, stale: bool = True) -> Cluster:
    """Three workers, one of them with a heartbeat 40 s old when ``stale``."""
    workers = [
        heartbeat(),
        heartbeat(
            worker_id="web-2-9001", hostname="web-2", pid=9001, jobs_per_second=148.9,
            in_flight=20, processed=479_002, outages=0,
        ),
        heartbeat(
            worker_id="batch-1-311", hostname="batch-1", pid=311, queues=["low"],
            jobs_per_second=0.0, in_flight=1, processed=9_310,
            heartbeat_at=NOW - (40.0 if stale else 2.0),
            last_error=JOB_ERROR_LINE, last_error_at=NOW - 41.0, outages=0,
        ),
    ]  # fmt: skip
    return Cluster(
        workers=workers,
        queues={"high": 3, "default": 1_204, "low": 57},
        in_processing=33,
        scheduled=17,
        dead=8,
        read_at=NOW - 0.5,
    )


def top_link() -> Link:
    return Link(state="connected", endpoint=ENDPOINT)


def top_outage_link() -> Link:
    return Link(
        state="reconnecting",
        endpoint=ENDPOINT,
        outage_since=NOW - 8.3,
        attempt=5,
        next_retry_at=NOW + 1.1,
        last_error=OUTAGE_LINE.replace("fetching from queues [high, default]", "reading workers"),
        last_error_at=NOW - 0.4,
        outages=1,
    )
