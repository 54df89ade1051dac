"""Counters and timings of one worker process, kept cheap enough for the hot path.

Per job the worker only bumps integers and writes one float into a fixed ring of recent
durations; everything derived (rates, percentiles, RSS) is computed when somebody asks for a
:meth:`WorkerStats.snapshot` — the heartbeat, the dashboard, or a Prometheus scrape.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RING_SIZE = 4096  # recent job durations kept for the percentiles (a power of two)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[rank]


@dataclass
class WorkerStats:
    """What this worker has done. ``latency`` here is a job's run time (handler start to end)."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    requeued: int = 0
    started_at: float = field(default_factory=time.time)
    # Set by the worker: fixed facts (worker_id, hostname, queues, ...) and live gauges
    # (in_flight, connection state, outages, last error), merged into every snapshot.
    identity: dict[str, Any] = field(default_factory=dict)
    live: Callable[[], dict[str, Any]] = field(default=dict)
    # Set by the worker: jobs dead-lettered below it (the fetcher's undecodable payloads).
    dead_lettered_below: Callable[[], int] = field(default=int)
    _durations: array[float] = field(default_factory=lambda: array("d", bytes(8 * RING_SIZE)))
    _count: int = 0
    _rate_mark: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))
    _rate: float = 0.0

    def record_duration(self, seconds: float) -> None:
        self._durations[self._count & (RING_SIZE - 1)] = seconds
        self._count += 1

    def latency_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent job durations, in milliseconds."""
        recent = sorted(self._durations[: min(self._count, RING_SIZE)])
        return percentile(recent, 0.50) * 1000.0, percentile(recent, 0.99) * 1000.0

    def jobs_per_second(self) -> float:
        """Jobs finished per second since the previous call at least a second ago."""
        now = time.monotonic()
        finished = self.processed + self.failed
        mark_time, mark_count = self._rate_mark
        if now - mark_time >= 1.0:
            self._rate = (finished - mark_count) / (now - mark_time)
            self._rate_mark = (now, finished)
        return self._rate

    def counters(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered + self.dead_lettered_below(),
            "requeued": self.requeued,
        }

    def counter_line(self) -> str:
        """The one line the worker logs when it stops (a test asserts its shape)."""
        return " ".join(f"{name}={value}" for name, value in self.counters().items())

    def snapshot(self) -> dict[str, Any]:
        """The heartbeat-shaped dict of docs/CONTRACTS.md (also what the dashboard renders)."""
        p50, p99 = self.latency_ms()
        return {
            **self.identity,
            "started_at": self.started_at,
            "heartbeat_at": time.time(),
            **self.live(),
            **self.counters(),
            "jobs_per_second": round(self.jobs_per_second(), 1),
            "latency_p50_ms": round(p50, 3),
            "latency_p99_ms": round(p99, 3),
            "rss_bytes": rss_bytes(),
        }
