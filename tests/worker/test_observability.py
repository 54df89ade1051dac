"""What operators see: /healthz, /readyz, /metrics, JSON logs and the heartbeat in Redis."""

from __future__ import annotations

import json
import re

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, wait_for

HEARTBEAT_KEYS = {
    "worker_id", "hostname", "pid", "started_at", "heartbeat_at", "version", "queues", "mode",
    "concurrency", "in_flight", "processed", "failed", "retried", "dead_lettered",
    "connection_state", "outages", "outage_since", "last_error", "last_error_at",
    "jobs_per_second", "latency_p50_ms", "latency_p99_ms", "rss_bytes",
}  # fmt: skip


def metric(body: str, name: str) -> float:
    match = re.search(rf"^{name} ([\d.e+]+)$", body, re.MULTILINE)
    assert match, f"{name} not in /metrics:\n{body}"
    return float(match.group(1))


def test_health_ready_and_metrics_answer_for_real(
    start_worker: StartWorker, producer: SyncProducer, redis_server: RedisServer
) -> None:
    worker = start_worker(redis_server.url, "--metrics-port", "0", "--read-timeout", "1").started()
    port = worker.health_port()
    assert http_get(port, "/readyz") == (200, "ready\n")
    assert http_get(port, "/healthz") == (200, "loops progressing\n")
    assert http_get(port, "/nope")[0] == 404
    producer.enqueue("work", "m-1")
    wait_for(
        "processed=1 in /metrics",
        lambda: metric(http_get(port, "/metrics")[1], "steadfetch_processed_total") == 1,
    )
    assert metric(http_get(port, "/metrics")[1], "steadfetch_redis_connected") == 1
    redis_server.kill()
    _status, body = wait_for("not ready", lambda: (r := http_get(port, "/readyz"))[0] == 503 and r)
    assert "reconnecting" in body
    assert http_get(port, "/healthz")[0] == 200  # an outage is visible, not a reason to restart
    assert metric(http_get(port, "/metrics")[1], "steadfetch_redis_connected") == 0
    worker.signal(15)
    assert worker.wait() == 0


def test_json_logs_parse_and_carry_job_fields(
    start_worker: StartWorker,
    producer: SyncProducer,
    redis_server: RedisServer,
    oracle: redis.Redis,
) -> None:
    producer.enqueue("fail", "j-1", max_attempts=1)
    worker = start_worker(redis_server.url, "--log-format", "json").started()
    wait_for("dead-lettered", lambda: oracle.llen("steadfetch:dead") == 1)
    assert worker.stop() == 0
    entries = [json.loads(line) for line in worker.log.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in entries)
    (failure,) = [e for e in entries if e.get("task") == "fail"]
    assert failure["level"] == "ERROR"
    assert failure["attempt"] == 1
    assert failure["outcome"] == "dead"
    assert any(re.match(r"worker \S+ stopped after", e["message"]) for e in entries)


def test_heartbeat_in_redis_has_the_contract_fields(
    start_worker: StartWorker,
    producer: SyncProducer,
    redis_server: RedisServer,
    oracle: redis.Redis,
) -> None:
    producer.enqueue("work", "hb-1")
    worker = start_worker(redis_server.url, "--worker-id", "hb-worker").started()

    def beat() -> dict[str, object] | None:
        raw = oracle.get("steadfetch:worker:hb-worker")
        body = json.loads(raw) if raw else None
        return body if body and body.get("processed") == 1 else None

    body = wait_for("a heartbeat after the job", beat)
    assert body.keys() >= HEARTBEAT_KEYS
    assert body["connection_state"] == "connected"
    assert body["mode"] == "reliable"
    # TTL: 3 x --heartbeat-interval 0.5, plus one write on a new connection: the connect timeout
    # (2 s) and two replies as slow as the read timeout (5 s each): 13.5 s.
    assert 12000 < oracle.pttl("steadfetch:worker:hb-worker") <= 13500
    assert worker.stop() == 0
    assert oracle.get("steadfetch:worker:hb-worker") is None


def test_heartbeat_carries_queue_depths_for_the_dashboard(
    start_worker: StartWorker, redis_server: RedisServer, oracle: redis.Redis
) -> None:
    # Jobs for a queue this worker does not serve stay put, so the depth is known exactly.
    worker = start_worker(
        redis_server.url, "--worker-id", "depth-worker", "--queues", "default,idle"
    ).started()
    oracle.rpush("steadfetch:queue:other", b"{}")
    oracle.zadd("steadfetch:scheduled", {b"x": 4_000_000_000})
    oracle.rpush("steadfetch:dead", b"{}", b"{}")
    oracle.rpush("steadfetch:queue:idle", b"not json")  # dead-lettered when fetched

    def beat() -> dict[str, object] | None:
        raw = oracle.get("steadfetch:worker:depth-worker")
        body = json.loads(raw) if raw else None
        return body if body and body.get("dead_letter") == 3 else None

    body = wait_for("a heartbeat with the depths", beat)
    assert body["queue_depths"] == {"default": 0, "idle": 0}
    assert body["scheduled"] == 1
    assert worker.stop() == 0
    assert oracle.get("steadfetch:worker:hb-worker") is None
