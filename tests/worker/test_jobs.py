"""Jobs through the real binary: the concurrency bound, timeouts, retries, dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import read_records, wait_for

DEAD = "steadfetch:dead"


def starts(record_path: Path, token_prefix: str = "") -> list[dict[str, object]]:
    return [
        r
        for r in read_records(record_path)
        if r["event"] == "start" and str(r["token"]).startswith(token_prefix)
    ]


def dead_entries(oracle: redis.Redis, count: int) -> list[dict[str, object]]:
    wait_for(f"{count} dead-letter entries", lambda: oracle.llen(DEAD) >= count)
    return [json.loads(e) for e in oracle.lrange(DEAD, 0, -1)]


def test_never_more_than_concurrency_jobs_run_at_once(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
) -> None:
    producer.enqueue_many({"task": "work", "args": (f"c-{i}", 0.05)} for i in range(60))
    worker = start_worker(redis_server.url, "--concurrency", "4", "--prefetch", "2").started()
    wait_for(
        "all 60 jobs ended",
        lambda: sum(r["event"] == "end" for r in read_records(record_path)) == 60,
    )
    assert worker.stop() == 0
    peak = max(int(r["running"]) for r in starts(record_path))  # type: ignore[call-overload]
    assert peak == 4  # the bound is reached (a sliding window) and never exceeded


def test_sync_handlers_run_in_the_thread_pool(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer, record_path: Path
) -> None:
    producer.enqueue_many({"task": "sync_work", "args": (f"s-{i}", 0.2)} for i in range(4))
    worker = start_worker(redis_server.url, "--concurrency", "4").started()
    wait_for(
        "4 sync jobs ended",
        lambda: sum(r["event"] == "end" for r in read_records(record_path)) == 4,
    )
    assert worker.stop() == 0
    # All four overlapped: the pool has 4 threads, so the event loop was never blocked by one.
    records = read_records(record_path)
    last_start = max(float(r["t"]) for r in records if r["event"] == "start")
    first_end = min(float(r["t"]) for r in records if r["event"] == "end")
    assert last_start < first_end


def test_failing_job_is_retried_then_dead_lettered_with_the_error(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    job_id = producer.enqueue("fail", "f-1", max_attempts=2)
    worker = start_worker(redis_server.url).started()
    (entry,) = dead_entries(oracle, 1)
    assert len(starts(record_path, "f-1")) == 2
    assert entry["error"] == "ValueError: failing on purpose: f-1"
    assert entry["attempts"] == 2
    assert "failing on purpose" in str(entry["traceback"])
    # The dead-letter entry is written before the line that says so: wait for the line.
    worker.wait_log(rf"job {job_id} \(task fail, attempt 2/2\) failed: ValueError")
    log = worker.log
    assert f"job {job_id} (task fail, attempt 1/2) failed: ValueError" in log
    assert f"job {job_id} (task fail, attempt 2/2) failed: ValueError" in log
    assert "dead-lettered (last attempt)" in log
    assert 'raise ValueError(f"failing on purpose: {token}")' in log  # the traceback
    assert worker.stop() == 0


def test_job_timeout_fails_the_attempt(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    producer.enqueue("hang", "h-1", max_attempts=1)  # the task's own timeout: 0.5 s
    producer.enqueue("work", "w-1", 60.0, max_attempts=1)  # the worker default below
    worker = start_worker(redis_server.url, "--job-timeout", "0.7").started()
    entries = dead_entries(oracle, 2)
    errors = sorted(str(e["error"]) for e in entries)
    assert errors == [
        "JobTimeout: job exceeded its timeout of 0.5 s",
        "JobTimeout: job exceeded its timeout of 0.7 s",
    ]
    assert worker.stop() == 0


def test_unknown_task_and_bad_arguments_are_dead_lettered_at_once(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    producer.enqueue("no_such_task", 1)
    producer.enqueue("work", "too", "many", "args", max_attempts=5)
    producer.enqueue("work", unexpected="kw")
    worker = start_worker(redis_server.url).started()
    reasons = sorted(str(e["reason"]) for e in dead_entries(oracle, 3))
    assert reasons[0].startswith(
        "arguments do not fit work(token, seconds=0.0): missing a required"
    )
    assert reasons[1].startswith("arguments do not fit work(token, seconds=0.0): too many")
    assert reasons[2] == (
        "unknown task 'no_such_task' "
        "(this worker knows: fail, fail_chained, hang, stubborn, sync_hang, sync_work, work)"
    )
    assert starts(record_path) == []  # no attempt: retrying could not help
    assert worker.stop() == 0


def test_a_sync_handler_stuck_past_its_timeout_does_not_keep_the_process_alive(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    oracle: redis.Redis,
) -> None:
    producer.enqueue("sync_hang", "stuck", max_attempts=1)
    worker = start_worker(redis_server.url).started()
    (entry,) = dead_entries(oracle, 1)
    assert entry["error"] == "JobTimeout: job exceeded its timeout of 0.5 s"
    worker.wait_log("timed out in a thread; the thread keeps running")
    assert worker.stop(timeout=15) == 0  # the abandoned thread does not block the exit
