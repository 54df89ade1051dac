"""Twins and zombies through the real binary: one live process per worker id, and a worker that
was frozen past its heartbeat TTL finds out, says so, counts, and cannot settle what it lost."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path
from typing import Any

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Keys, SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import http_get, read_records, wait_for
from tests.worker.test_observability import metric

KEYS = Keys()
#: TTL = 3 x 0.5 s + connect 0.5 s + 2 x read 1 s = 4 s: a freeze of a few seconds outlives it.
SHORT_TTL = ["--heartbeat-interval", "0.5", "--read-timeout", "1", "--connect-timeout", "0.5"]


def records(path: Path, event: str, token: str) -> list[dict[str, Any]]:
    return [r for r in read_records(path) if r["event"] == event and r["token"] == token]


def heartbeat(oracle: redis.Redis, worker_id: str) -> dict[str, Any]:
    raw = oracle.get(KEYS.heartbeat(worker_id))
    return json.loads(raw) if raw else {}  # type: ignore[arg-type]


def test_a_second_live_process_with_the_same_worker_id_exits_2_naming_the_holder(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer, record_path: Path
) -> None:
    first = start_worker(redis_server.url, "--worker-id", "twin").started()
    second = start_worker(redis_server.url, "--worker-id", "twin")
    assert second.wait() == 2
    assert re.search(
        rf"ERROR worker\.cli: cannot continue: worker id twin is already held by a live process "
        rf"\(host {re.escape(socket.gethostname())} pid {first.pid} since \d{{4}}-\d\d-\d\dT",
        second.log,
    ), second.log
    assert "started" not in second.log
    producer.enqueue("work", "after-twin")  # the holder goes on as if nothing happened
    wait_for("the job done", lambda: records(record_path, "end", "after-twin"))
    assert first.stop() == 0


def test_a_restart_after_a_crash_with_the_same_id_takes_over_at_once(
    redis_server: RedisServer, start_worker: StartWorker, producer: SyncProducer, record_path: Path
) -> None:
    # A long heartbeat TTL (3 x 5 s + 5 s): a takeover that waited for it would time out below.
    flags = ["--worker-id", "same", "--heartbeat-interval", "5"]
    crashed = start_worker(redis_server.url, *flags).started()
    producer.enqueue("work", "held", 1.0)
    wait_for("the job started", lambda: records(record_path, "start", "held"))
    crashed.signal(signal.SIGKILL)
    crashed.wait()
    restarted = start_worker(redis_server.url, *flags)
    restarted.wait_log(
        rf"worker id same was held by host \S+ pid {crashed.pid} since \S+, which is no "
        r"longer running; taking it over",
        timeout=10,
    )
    restarted.started()
    wait_for("the adopted job done", lambda: records(record_path, "end", "held"), timeout=10)
    assert restarted.stop() == 0


def test_a_frozen_worker_finds_out_it_was_presumed_dead_and_its_late_ack_touches_nothing(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    zombie = start_worker(
        redis_server.url, "--worker-id", "zombie", *SHORT_TTL, "--metrics-port", "0"
    ).started()
    port = zombie.health_port()
    producer.enqueue("work", "frozen", 2.0)
    wait_for("the zombie ran the job", lambda: records(record_path, "start", "frozen"))
    zombie.signal(signal.SIGSTOP)
    try:
        survivor = start_worker(
            redis_server.url, "--worker-id", "survivor", "--recovery-interval", "0.5"
        ).started()
        survivor.wait_log(
            r"recovered 1 job\(s\) of 1 dead worker\(s\) \(heartbeat expired\): zombie \(1 job\); "
            r"by worker survivor"
        )
        wait_for("the job done by the survivor", lambda: len(records(record_path, "end", "frozen")))
    finally:
        zombie.signal(signal.SIGCONT)
    zombie.wait_log(r"WARNING worker: worker zombie: heartbeat loop stalled for \d+\.\d s, past")
    zombie.wait_log(r"WARNING fetcher\.registry: worker zombie was presumed dead: .* 1 job\(s\) it")
    _status, body = wait_for(
        "/healthz 503", lambda: (r := http_get(port, "/healthz"))[0] == 503 and r, timeout=5
    )
    assert "presumed dead" in body or "stalled past the heartbeat TTL" in body
    wait_for("late settle counted", lambda: heartbeat(oracle, "zombie").get("late_settles") == 1)
    beat = heartbeat(oracle, "zombie")
    assert beat["presumed_dead"] == 1 and beat["presumed_dead_at"] is not None
    scrape = http_get(port, "/metrics")[1]
    assert metric(scrape, "steadfetch_presumed_dead_total") == 1
    assert metric(scrape, "steadfetch_late_settles_total") == 1
    assert heartbeat(oracle, "survivor")["recovered_jobs"] == 1
    # The job ran twice (at-least-once), settled once, and nothing is left anywhere.
    assert len(records(record_path, "end", "frozen")) == 2
    assert oracle.llen(KEYS.dead) == 0 and oracle.zcard(KEYS.scheduled) == 0
    assert oracle.keys(f"{KEYS.processing_prefix}*") == []
    assert oracle.smembers(KEYS.workers) == {b"zombie", b"survivor"}  # rejoined, fresh lease
    assert survivor.stop() == 0 and zombie.stop() == 0
    assert len(re.findall(r"recovered \d+ job", survivor.log + zombie.log)) == 1  # logged once


def test_a_frozen_worker_does_not_start_a_fetched_job_that_was_recovered_and_run_elsewhere(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    """Found by freeze-2w in docker: woken up, the zombie started a job it had fetched before
    the freeze (waiting behind a running one), which the survivor had recovered and run."""
    flags = ["--worker-id", "zombie", "--concurrency", "1", "--prefetch", "1", *SHORT_TTL]
    zombie = start_worker(redis_server.url, *flags).started()
    producer.enqueue("work", "running", 2.0)
    producer.enqueue("work", "waiting")
    wait_for("the zombie ran one job", lambda: records(record_path, "start", "running"))
    held = KEYS.processing("zombie", KEYS.queue_key("default"))
    wait_for("the second job fetched into its window", lambda: oracle.llen(held) == 2)

    def in_hand() -> bool:  # Redis moved it; has the worker read the fetch's reply? (SIGUSR1)
        if "1 fetched and waiting" in zombie.log:
            return True
        zombie.signal(signal.SIGUSR1)
        return False

    wait_for("the worker saying the second job waits in its window", in_hand, interval=0.3)
    zombie.signal(signal.SIGSTOP)
    try:
        survivor = start_worker(
            redis_server.url, "--worker-id", "survivor", "--recovery-interval", "0.5"
        ).started()
        survivor.wait_log(r"recovered 2 job\(s\) of 1 dead worker\(s\) .*: zombie \(2 jobs\)")
        wait_for("the survivor ran both", lambda: records(record_path, "end", "waiting"))
    finally:
        zombie.signal(signal.SIGCONT)
    zombie.wait_log(r"WARNING fetcher\.registry: worker zombie was presumed dead")
    wait_for("the zombie's first job to end", lambda: len(records(record_path, "end", "running")))
    # Its one runner is free again: it either starts the waiting job (the bug) or says why not.
    not_started = r"WARNING worker: job \S+ not started: it left this worker's processing list"
    wait_for(
        "the waiting job started again or a line saying why not",
        lambda: (
            re.search(not_started, zombie.log) or len(records(record_path, "start", "waiting")) > 1
        ),
    )
    assert len(records(record_path, "start", "waiting")) == 1  # the survivor's run only
    assert re.search(not_started, zombie.log), zombie.log
    assert survivor.stop() == 0 and zombie.stop() == 0
    assert oracle.llen(KEYS.queue_key("default")) == 0
    assert oracle.keys(f"{KEYS.processing_prefix}*") == []
