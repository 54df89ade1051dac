"""Redis going away under a running worker: shutdown still ends in time; the watchdog speaks."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, read_records, wait_for


@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_shutdown_during_an_outage_ends_within_the_grace_period(
    start_worker: StartWorker, record_path: Path, fault: str
) -> None:
    with RedisServer(appendonly=True) as server:
        with SyncProducer(server.url, deadline=10.0) as producer:
            producer.enqueue("work", "during-outage", 1.0)
        worker = start_worker(server.url, "--grace-period", "3", "--read-timeout", "1").started()
        wait_for("the job started", lambda: read_records(record_path))
        server.pause() if fault == "pause" else server.kill()
        began = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
        assert time.monotonic() - began < 3 + 3.0  # the grace period, plus process start-up slack
        worker.wait_log(
            # The line names the cause: the last failed attempt's exception, or, when Redis is
            # frozen and nothing has failed yet, that no reply came before the deadline.
            r"shutdown: Redis 127.0.0.1:\d+/0 unreachable while acking finished jobs \("
            r"(TimeoutError|ConnectionRefusedError|ConnectionError).*\); gave up at "
            r"the grace deadline\. Unfinished jobs stay in this worker's processing list"
        )
        if fault == "pause":
            server.resume()
        else:
            server.start()
        oracle = redis.Redis(port=server.port, socket_timeout=5)
        held = [
            item
            for key in oracle.keys("steadfetch:processing:*")
            for item in oracle.lrange(key, 0, -1)
        ]
        queued = oracle.lrange("steadfetch:queue:default", 0, -1)
        oracle.close()
        assert [r["event"] for r in read_records(record_path)] == ["start", "end"]
        if fault == "kill":
            # Finished but never acked: at-least-once keeps it for recovery (a duplicate later,
            # never a loss).
            assert len(held) == 1 and b"during-outage" in held[0]
            assert queued == []
        else:
            # The ack went into the frozen server's socket buffer before the worker gave up; on
            # SIGCONT Redis may still apply it. Acked or held for recovery, never both, never
            # back in the queue behind the worker's back.
            assert len(held) <= 1 and queued == [], worker.log  # queued: see test_recovery.py
            assert all(b"during-outage" in item for item in held)


def test_watchdog_notices_a_fetch_that_cannot_return_and_health_says_so(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    """With the read timeout switched off (unsafe), a paused Redis hangs the fetch forever."""
    worker = start_worker(
        redis_server.url,
        "--read-timeout", "0", "--watchdog-timeout", "2", "--block-timeout", "0.5",
        "--metrics-port", "0",
    ).started()  # fmt: skip
    worker.wait_log("read timeout disabled")
    port = worker.health_port()
    redis_server.pause()
    try:
        worker.wait_log(
            r"watchdog: fetch from queues \[default\] made no progress for [\d.]+ s \(limit 2\.0 s"
        )
        assert http_get(port, "/healthz")[0] == 503
    finally:
        redis_server.resume()
    worker.wait_log("fetch loop is making progress again")
    wait_for("healthy again", lambda: http_get(port, "/healthz")[0] == 200)
    assert worker.stop() == 0


def test_second_signal_cuts_a_cleanup_that_waits_for_redis(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(redis_server.url, "--grace-period", "60", "--read-timeout", "1").started()
    redis_server.pause()
    try:
        worker.signal(signal.SIGTERM)
        # the cleanup is stuck on Redis: giving back starts by reading who holds the lease
        worker.wait_log("unreachable while reading the lease")
        began = time.monotonic()
        worker.signal(signal.SIGINT)
        assert worker.wait() == 130
        assert time.monotonic() - began < 5.0  # not the 60 s grace period
        worker.wait_log("gave up at the grace deadline")
    finally:
        redis_server.resume()


def test_healthz_reports_stuck_heartbeats_even_with_the_watchdog_off(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker(
        redis_server.url,
        "--read-timeout", "0", "--watchdog-timeout", "0", "--retry-cap", "0.5",
        "--metrics-port", "0",
    ).started()  # fmt: skip
    worker.wait_log("watchdog disabled")
    port = worker.health_port()
    assert http_get(port, "/healthz")[0] == 200
    redis_server.pause()
    try:
        _status, body = wait_for(
            "unhealthy", lambda: (r := http_get(port, "/healthz"))[0] == 503 and r
        )
        assert body.startswith("heartbeat loop made no progress for")
    finally:
        redis_server.resume()
    wait_for("healthy again", lambda: http_get(port, "/healthz")[0] == 200)
    assert worker.stop() == 0


def test_worker_rides_out_a_redis_restart_visibly_and_keeps_working(
    start_worker: StartWorker, record_path: Path
) -> None:
    with RedisServer(appendonly=True) as server:
        worker = start_worker(server.url, "--read-timeout", "1", "--retry-cap", "0.5").started()
        with SyncProducer(server.url, deadline=10.0) as producer:
            producer.enqueue("work", "before")
        wait_for("the first job ran", lambda: len(read_records(record_path)) == 2)
        server.kill()
        worker.wait_log(
            r"Redis 127\.0\.0\.1:\d+/0 unreachable while fetching from queues \[default\]"
        )
        server.start()
        worker.wait_log(r"Redis 127\.0\.0\.1:\d+/0 reachable again after [\d.]+ s \(\d+ attempts\)")
        with SyncProducer(server.url, deadline=10.0) as producer:
            producer.enqueue("work", "after")
        wait_for(
            "the job after the restart ran",
            lambda: any(r.get("token") == "after" for r in read_records(record_path)),
        )
        assert worker.stop() == 0
