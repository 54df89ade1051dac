"""The stop line says how long the worker ran and how long its shutdown took, and counts every
dead letter; the heartbeat (and so ``top``) carries the last job error, not only Redis errors."""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version

import redis
from rich.console import Console

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from steadfetch.worker.dashboard.render import workers_table
from tests.worker.conftest import StartWorker
from tests.worker.harness import wait_for


def test_stop_line_uptime_shutdown_time_and_every_dead_letter(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    oracle: redis.Redis,
) -> None:
    oracle.rpush("steadfetch:queue:default", b"\xff not a job")  # the fetcher dead-letters it
    failing = producer.enqueue("fail", "once", max_attempts=1)  # the worker dead-letters it
    worker = start_worker(redis_server.url, "--worker-id", "stop-line").started()
    wait_for("two dead letters", lambda: oracle.llen("steadfetch:dead") == 2)

    def beat() -> dict[str, object] | None:
        raw = oracle.get("steadfetch:worker:stop-line")
        snap = json.loads(raw) if raw else None
        return snap if snap and snap.get("last_job_error") else None

    snap = wait_for("a heartbeat with the job error", beat)
    assert snap["last_job_error"] == (
        f"job {failing} (task fail): ValueError: failing on purpose: once"
    )
    assert snap["dead_lettered"] == 2
    assert snap["version"] == version("steadfetch")  # the one --version prints
    console = Console(width=200, record=True)
    console.print(workers_table([snap], now=time.time()))
    assert "ValueError: failing on purpose: once" in console.export_text()

    assert worker.stop() == 0
    line = worker.wait_log(
        r"worker stop-line stopped after running ([\d.]+) s \(shutdown took ([\d.]+) s\): "
        r"processed=0 failed=1 retried=0 dead_lettered=(\d+) requeued=0"
    )
    ran, shutdown, dead = float(line.group(1)), float(line.group(2)), int(line.group(3))
    assert dead == 2  # was 1: the payload the fetcher dead-lettered was not counted
    assert ran >= shutdown  # the run includes its shutdown
    assert re.search(r"dead-lettering a payload from steadfetch:queue:default", worker.log)
