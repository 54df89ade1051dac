"""What ``--concurrency`` promises survives handlers that misbehave, and reads of the figures
are pure: stuck sync threads are replaced (bounded) and reported by /healthz; jobs_per_second
is the same whoever reads it; ``status`` groups processing lists by the registry."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from steadfetch.worker.stats import RATE_WINDOW, WorkerStats
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, read_records, run_cli, wait_for
from tests.worker.test_observability import metric


def ended(record_path: Path, token: str) -> bool:
    return any(r["event"] == "end" and r["token"] == token for r in read_records(record_path))


def test_stuck_sync_handlers_do_not_take_the_capacity_and_too_many_make_healthz_fail(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    worker = start_worker(
        redis_server.url, "--concurrency", "2", "--metrics-port", "0", "--job-timeout", "3"
    ).started()
    port = worker.health_port()
    for n in range(2):  # as many stuck handlers as --concurrency (each times out after 0.5 s)
        producer.enqueue("sync_hang", f"stuck-{n}", max_attempts=1)
    wait_for("2 timed out", lambda: oracle.llen("steadfetch:dead") == 2)
    producer.enqueue("sync_work", "still-runs")  # before the fix: waited for a thread, timed out
    producer.enqueue("sync_work", "also-runs")
    wait_for(
        "sync jobs ran",
        lambda: ended(record_path, "still-runs") and ended(record_path, "also-runs"),
    )
    wait_for("2 stuck threads", lambda: metric(http_get(port, "/metrics")[1],
                                                "steadfetch_stuck_threads") == 2)  # fmt: skip
    assert http_get(port, "/healthz")[0] == 200  # spares cover the stuck threads
    producer.enqueue("sync_hang", "one-too-many", max_attempts=1)
    _code, body = wait_for(
        "/healthz 503", lambda: (r := http_get(port, "/healthz"))[0] == 503 and r
    )
    assert body.startswith("3 sync handler threads are stuck past their timeout (spares: 2)")
    assert worker.stop(timeout=15) == 0


def test_jobs_per_second_reads_are_pure_and_agree_across_threads() -> None:
    stats = WorkerStats()
    t0 = stats._since
    for n in range(100):  # 20 jobs per second for 5 s
        stats.processed += 1
        stats.record_duration(0.001, now=t0 + 0.05 * n)
    now = t0 + 5.0
    first, second = stats.jobs_per_second(now), stats.jobs_per_second(now)
    assert first == second == 100 / RATE_WINDOW  # reading changed nothing
    assert stats.jobs_per_second(now + RATE_WINDOW + 1) == 0.0  # idle: the window emptied

    seen: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(stats.jobs_per_second())

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for _ in range(20_000):  # the event loop's side: jobs ending now, while others read
            stats.record_duration(0.0)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert seen and min(seen) >= 0.0
    later = stats._ends[(stats._count - 1) & 4095] + 0.5
    assert stats.jobs_per_second(later) == stats.jobs_per_second(later) > 0


def test_status_shows_one_row_per_worker_even_for_default_ids_on_one_host(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    workers = [start_worker(redis_server.url, "--concurrency", "1", "--prefetch", "0").started()
               for _ in range(2)]  # fmt: skip
    for n in range(2):
        producer.enqueue("work", f"held-{n}", 30.0)
    wait_for("both running", lambda: len({r["pid"] for r in read_records(record_path)}) == 2)
    result = run_cli("status", "--json", "--redis-url", redis_server.url)
    assert result.returncode == 0, result.stderr
    processing = json.loads(result.stdout)["processing"]
    ids = {w["worker_id"] for w in json.loads(result.stdout)["workers"]}
    assert len(ids) == 2 and all(i.count(":") == 2 for i in ids)  # host:pid:random
    assert processing == {worker_id: 1 for worker_id in ids}
    for worker in workers:
        worker.close()
