"""The real ``steadfetch run`` binary on a real Redis Cluster: jobs from two queues in different
slots (on different primaries) are processed, a retried job comes back through its queue's
scheduled zset, ``status`` reads the cluster, and a SIGTERM drains cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from steadfetch.chaos.env.cluster import LocalCluster
from steadfetch.fetcher import Keys, SyncProducer
from tests.worker.conftest import StartWorker, record_path, start_worker
from tests.worker.harness import read_records, wait_for
from tests.worker.test_admin_cli import cli

__all__ = ["record_path", "start_worker"]  # the worker fixtures, used by name below

KEYS = Keys(cluster=True)


@pytest.fixture
def producer(cluster: LocalCluster) -> Iterator[SyncProducer]:
    with SyncProducer(cluster.url, deadline=10.0) as made:
        yield made


def tokens(path: Path, event: str) -> list[str]:
    return [r["token"] for r in read_records(path) if r["event"] == event]


def test_a_worker_processes_two_queues_in_different_slots_and_drains(
    cluster: LocalCluster,
    oracle: RedisCluster,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
) -> None:
    high, low = KEYS.queue_key("high"), KEYS.queue_key("low")
    assert cluster.primary_of(high).port != cluster.primary_of(low).port
    for i in range(20):
        producer.enqueue("work", f"low-{i}", queue="low")
        producer.enqueue("work", f"high-{i}", queue="high")
    worker = start_worker(
        cluster.url, "--queues", "high,low", "--worker-id", "cw", "--concurrency", "4"
    ).started()
    expected = {f"{q}-{i}" for q in ("high", "low") for i in range(20)}
    wait_for("all 40 jobs done", lambda: set(tokens(record_path, "end")) >= expected)
    producer.enqueue("work", "late-low", queue="low")  # the idle worker wakes for either slot
    producer.enqueue("work", "late-high", queue="high")
    wait_for(
        "the late jobs done", lambda: {"late-low", "late-high"} <= set(tokens(record_path, "end"))
    )
    status = json.loads(cli(cluster.url, "status", "--json").stdout)
    assert [w["worker_id"] for w in status["workers"]] == ["cw"]
    assert status["dead"] == 0 and status["scheduled"] == 0
    assert worker.stop() == 0
    assert "ERROR" not in worker.log and "Traceback" not in worker.log, worker.log
    assert not oracle.sismember(KEYS.workers, "cw")
    for queue in (high, low):
        assert oracle.llen(queue) == 0 and oracle.llen(KEYS.processing("cw", queue)) == 0


def test_a_primary_killed_mid_flow_is_replaced_and_no_replicated_job_is_lost(
    cluster: LocalCluster,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
) -> None:
    """Every enqueue is on the replicas before the kill, so the failover may roll back fetches
    and acks (a job then runs again: at-least-once) but must not lose a job."""
    low = KEYS.queue_key("low")
    expected = set()
    for i in range(40):
        for queue in ("high", "low"):
            producer.enqueue("work", f"{queue}-{i}", 0.02, queue=queue)
            expected.add(f"{queue}-{i}")
    victim = cluster.primary_of(low)
    for node in cluster.primary_nodes():
        cluster.wait_replicated(node)
    worker = start_worker(
        cluster.url, "--queues", "high,low", "--worker-id", "cw", "--concurrency", "4"
    ).started()
    try:
        wait_for(
            "some low jobs done",
            lambda: any(t.startswith("low-") for t in tokens(record_path, "end")),
        )
        victim.kill()
        worker.wait_log(rf"primary moved from 127\.0\.0\.1:{victim.port} to ", timeout=30)
        wait_for("every job done", lambda: set(tokens(record_path, "end")) >= expected, timeout=60)
        assert worker.stop() == 0
    finally:
        victim.start()  # back as a replica of the promoted one: the session cluster is whole
        cluster.wait_ok()
    ended = tokens(record_path, "end")
    assert set(ended) == expected  # nothing lost, nothing invented; reruns are allowed
    assert "Traceback" not in worker.log, worker.log
