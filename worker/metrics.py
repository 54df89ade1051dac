"""Prometheus metrics for one worker, read from :class:`WorkerStats` at scrape time.

A custom collector instead of Counter objects: the hot path then does nothing for metrics (no
lock per job), and a scrape always agrees with the heartbeat because both read one snapshot.
The registry is the worker's own, never prometheus-client's global default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = {
    "processed": "Jobs whose handler returned",
    "failed": "Jobs whose handler raised or timed out",
    "retried": "Failed jobs scheduled for another attempt",
    "dead_lettered": "Jobs moved to the dead-letter list",
    "requeued": "Jobs given back to their queue at shutdown",
    "outages": "Redis outages seen by this worker",
    "recovered_jobs": "Jobs this worker moved back to their queues from dead workers",
    "dead_workers_recovered": "Dead workers (heartbeat expired) this worker recovered",
    "presumed_dead": "Times this worker found it had been presumed dead (lease taken away)",
    "late_settles": "Jobs this worker finished after they had been recovered elsewhere "
    "(its ack or retry was fenced off)",
    "failovers": "Redis primary changes (Sentinel failovers) this worker followed",
}
_GAUGES = {
    "in_flight": "Jobs running now",
    "concurrency": "Maximum jobs running at once",
    "jobs_per_second": "Recent job completion rate",
    "latency_p50_ms": "Median job run time over recent jobs (ms)",
    "latency_p99_ms": "99th percentile job run time over recent jobs (ms)",
    "rss_bytes": "Resident memory of the worker process",
    "stuck_threads": "Sync handler threads still running past their job's timeout",
}


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        for name, doc in _COUNTERS.items():
            counter = CounterMetricFamily(f"steadfetch_{name}", doc)
            counter.add_metric([], float(snap.get(name) or 0))
            yield counter
        for name, doc in _GAUGES.items():
            gauge = GaugeMetricFamily(f"steadfetch_{name}", doc)
            gauge.add_metric([], float(snap.get(name) or 0))
            yield gauge
        connected = GaugeMetricFamily("steadfetch_redis_connected", "1 when Redis is connected")
        connected.add_metric([], 1.0 if snap.get("connection_state") == "connected" else 0.0)
        yield connected
        primary = GaugeMetricFamily(
            "steadfetch_redis_primary",
            "1 for the Redis primary this worker talks to now (its address in the label)",
            labels=["address"],
        )
        if snap.get("primary"):
            primary.add_metric([str(snap["primary"])], 1.0)
        yield primary
        policy = snap.get("eviction_policy")
        safe = GaugeMetricFamily(
            "steadfetch_redis_eviction_safe",
            "1 when Redis's maxmemory-policy is noeviction, 0 when Redis may evict jobs, "
            "-1 when it could not be read",
        )
        safe.add_metric([], -1.0 if policy is None else float(policy == "noeviction"))
        yield safe


def metrics_registry(snapshot: Callable[[], dict[str, Any]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
