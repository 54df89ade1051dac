"""Signals against the real binary: exit codes, time to exit, what goes back to the queue."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import WorkerUnderTest, read_records, wait_for

QUEUE = "steadfetch:queue:default"
COUNTER_LINE = (
    r"worker \S+ stopped after running [\d.]+ s \(shutdown took [\d.]+ s\): processed=(\d+) "
    r"failed=(\d+) retried=(\d+) dead_lettered=(\d+) requeued=(\d+)"
)


def started_tokens(record_path: Path) -> set[str]:
    return {r["token"] for r in read_records(record_path) if r["event"] == "start"}


def started_lines(record_path: Path) -> int:
    return record_path.read_bytes().count(b'"event": "start"') if record_path.exists() else 0


def sigterm_cancels_one_job_after_the_grace_period(worker: WorkerUnderTest) -> None:
    """SIGTERM to a worker started with ``--grace-period 1.5`` whose one job outlives it: exit 0,
    well within the grace period plus slack, having cancelled that job."""
    began = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert time.monotonic() - began < 1.5 + 3.0
    worker.wait_log(r"cancelling 1 running jobs \(grace period over\)")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_when_idle_exits_zero_promptly_with_counter_line(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis, sig: int
) -> None:
    worker = start_worker(redis_server.url, "--block-timeout", "5").started()
    began = time.monotonic()
    worker.signal(sig)
    assert worker.wait() == 0
    # A blocked 5 s fetch is interrupted at once, not waited out (generous bound: loaded CI).
    assert time.monotonic() - began < 4.5
    match = worker.wait_log(COUNTER_LINE)
    assert match.groups() == ("0", "0", "0", "0", "0")
    assert oracle.smembers("steadfetch:workers") == set()
    assert oracle.keys("steadfetch:worker:*") == []


def test_running_jobs_finish_within_the_grace_period(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    worker = start_worker(redis_server.url, "--concurrency", "2", "--prefetch", "0").started()
    producer.enqueue("work", "slow-1", 1.0)
    producer.enqueue("work", "slow-2", 1.0)
    wait_for("both jobs started", lambda: len(started_tokens(record_path)) == 2)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    ends = [r for r in read_records(record_path) if r["event"] == "end"]
    assert len(ends) == 2
    assert worker.wait_log(COUNTER_LINE).group(1) == "2"
    assert oracle.llen(QUEUE) == 0
    assert oracle.keys("steadfetch:processing:*") == []


@pytest.mark.parametrize("mode", ["reliable", "fast"])
def test_jobs_still_running_after_the_grace_period_are_cancelled_and_requeued(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
    mode: str,
) -> None:
    worker = start_worker(
        redis_server.url, "--concurrency", "1", "--prefetch", "1", "--grace-period", "1.5",
        "--mode", mode,
    ).started()  # fmt: skip
    producer.enqueue("work", "long", 60.0)
    producer.enqueue("work", "waiting", 0.0)
    wait_for("the long job started", lambda: "long" in started_tokens(record_path))
    wait_for("the waiting job prefetched", lambda: oracle.llen(QUEUE) == 0)
    sigterm_cancels_one_job_after_the_grace_period(worker)
    assert worker.wait_log(COUNTER_LINE).group(5) == "2"
    # Both are back at the head of the queue, in order; nothing is left in processing.
    assert [p.count(b"long") + 2 * p.count(b"waiting") for p in oracle.lrange(QUEUE, 0, -1)] == [
        1,
        2,
    ]
    assert oracle.keys("steadfetch:processing:*") == []
    assert "waiting" not in started_tokens(record_path)


def test_a_handler_that_swallows_the_cancel_and_awaits_again_is_still_stopped(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    worker = start_worker(redis_server.url, "--grace-period", "1.5").started()
    producer.enqueue("stubborn", "stubborn")
    wait_for("the job started", lambda: "stubborn" in started_tokens(record_path))
    sigterm_cancels_one_job_after_the_grace_period(worker)
    assert [r["event"] for r in read_records(record_path)] == ["start", "swallowed"]
    assert oracle.llen(QUEUE) == 1
    assert oracle.keys("steadfetch:processing:*") == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_second_signal_cancels_requeues_and_exits_nonzero(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
    sig: int,
    code: int,
) -> None:
    worker = start_worker(redis_server.url, "--grace-period", "60").started()
    producer.enqueue("work", "long", 60.0)
    wait_for("the job started", lambda: "long" in started_tokens(record_path))
    worker.signal(signal.SIGTERM)
    worker.wait_log(r"waiting up to")
    began = time.monotonic()
    worker.signal(sig)
    assert worker.wait() == code
    assert time.monotonic() - began < 5.0
    worker.wait_log(r"cancelling 1 running jobs \(second signal\)")
    assert oracle.llen(QUEUE) == 1
    assert oracle.keys("steadfetch:processing:*") == []


def test_sigkill_then_restart_loses_nothing(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    tokens = [f"job-{i}" for i in range(300)]
    # 300 x 0.1 s at concurrency 10: ~3 s of work, so the kill lands mid-way even under load.
    producer.enqueue_many({"task": "work", "args": (t, 0.1)} for t in tokens)
    first = start_worker(redis_server.url, "--concurrency", "10").started()
    wait_for("some jobs done", lambda: len(started_tokens(record_path)) >= 50)
    first.signal(signal.SIGKILL)
    first.wait()
    assert oracle.keys("steadfetch:processing:*"), "the kill should leave jobs in processing"
    second = start_worker(redis_server.url, "--concurrency", "10").started()
    wait_for("every job executed", lambda: started_tokens(record_path) >= set(tokens))
    assert second.stop() == 0
    ends = {r["token"] for r in read_records(record_path) if r["event"] == "end"}
    assert ends >= set(tokens)
    assert oracle.llen(QUEUE) == 0
    assert oracle.keys("steadfetch:processing:*") == []


@pytest.mark.parametrize("after", [40, 150, 400])
def test_sigterm_while_fetching_and_acking_in_a_tight_loop_stops_within_the_grace_period(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
    after: int,
) -> None:
    """Instant jobs keep the fetch and ack loops in back-to-back Redis calls, so the signal's
    cancel lands inside one (where redis-py 8.1 on 3.11 can lose it). A lost cancel shows as a
    hang (a loop waiting forever after its one cancel) or as exit 1 (fetch into the closed
    window). Three rounds per moment: it is a race."""
    tokens = [f"job-{i}" for i in range(3000)]
    for _ in range(3):
        oracle.flushdb()
        record_path.unlink(missing_ok=True)
        producer.enqueue_many({"task": "work", "args": (t,)} for t in tokens)
        worker = start_worker(
            redis_server.url, "--concurrency", "10", "--grace-period", "3"
        ).started()
        # Count bytes, not JSON: the file grows fast and a poll may read a half-written line.
        wait_for(f"{after} jobs started", lambda: started_lines(record_path) >= after)
        began = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.log
        assert time.monotonic() - began < 3.0 + 1.5, worker.log
        processed = int(worker.wait_log(COUNTER_LINE).group(1))
        assert processed < len(tokens), "the signal came too late to interrupt the loops"
        # Nothing lost, nothing left in processing: every job was acked or went back.
        assert oracle.llen(QUEUE) + processed == len(tokens)
        assert oracle.keys("steadfetch:processing:*") == []
