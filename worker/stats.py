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
RATE_WINDOW = 5.0  # jobs_per_second: completions over this many recent seconds
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
    # (in_flight, connection state, outages, last error), merged into every snapshot; and
    # the safety facts: ownership counters (recovered jobs, presumed dead, late settles: see
    # fetcher.Ownership), stuck sync threads, the Redis eviction policy.
    identity: dict[str, Any] = field(default_factory=dict)
    live: Callable[[], dict[str, Any]] = field(default=dict)
    # Set by the worker: jobs dead-lettered below it (the fetcher's undecodable payloads).
    dead_lettered_below: Callable[[], int] = field(default=int)
    safety: Callable[[], dict[str, Any]] = field(default=dict)
    _durations: array[float] = field(default_factory=lambda: array("d", bytes(8 * RING_SIZE)))
    # When each recorded job ended (monotonic s), in the same ring slots as its duration.
    _ends: array[float] = field(default_factory=lambda: array("d", bytes(8 * RING_SIZE)))
    _count: int = 0
    _since: float = field(default_factory=time.monotonic)

    def record_duration(self, seconds: float, now: float | None = None) -> None:
        slot = self._count & (RING_SIZE - 1)
        self._durations[slot] = seconds
        self._ends[slot] = time.monotonic() if now is None else now
        self._count += 1  # last: a reader on another thread never counts an unwritten slot

    def latency_ms(self) -> tuple[float, float]:
        """(p50, p99) of the recent job durations, in milliseconds."""
        recent = sorted(self._durations[: min(self._count, RING_SIZE)])
        return percentile(recent, 0.50) * 1000.0, percentile(recent, 0.99) * 1000.0

    def jobs_per_second(self, now: float | None = None) -> float:
        """Jobs finished per second over the last :data:`RATE_WINDOW` seconds.

        A pure read: the heartbeat, a Prometheus scrape and the dashboard's thread may all call
        it, and none changes what another sees (the old figure reset a shared mark on every
        read, so it depended on who read last, and two threads could make it negative). It
        walks back from the newest end time in the ring, so it costs O(jobs in the window),
        at most :data:`RING_SIZE`; with the ring full of recent jobs it divides by their span.
        """
        now = time.monotonic() if now is None else now
        count = self._count
        ends = self._ends
        start = now - RATE_WINDOW
        recent = 0
        oldest = now
        for back in range(min(count, RING_SIZE)):
            ended = ends[(count - 1 - back) & (RING_SIZE - 1)]
            if ended < start:
                break
            recent += 1
            oldest = min(oldest, ended)
        if recent == 0:
            return 0.0
        if recent >= RING_SIZE:
            return recent / max(now - oldest, 1e-3)
        return recent / min(RATE_WINDOW, max(1.0, now - self._since))

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
            **self.safety(),
            "jobs_per_second": round(self.jobs_per_second(), 1),
            "latency_p50_ms": round(p50, 3),
            "latency_p99_ms": round(p99, 3),
            "rss_bytes": rss_bytes(),
        }
