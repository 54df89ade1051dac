"""Signals besides SIGTERM/SIGINT, with the real binary: each has a defined, logged behaviour.

Was: SIGUSR1 and SIGUSR2 killed a worker (and a supervisor) by their default action, without a
line, its running jobs cut and left for recovery; SIGHUP to the ``--processes`` supervisor
stopped it while its children kept running, until its backstop SIGKILLed them (exit 1).
Now (worker.shutdown): SIGUSR1 logs one state line, SIGUSR2 is ignored with a line, SIGHUP to a
supervisor drains every child as SIGTERM does (tests/worker/test_supervisor.py).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import read_records, wait_for

STATE = r"state \(SIGUSR1\): "


def test_sigusr1_logs_one_state_line_and_changes_nothing(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
    oracle: redis.Redis,
) -> None:
    worker = start_worker(redis_server.url, "--concurrency", "4").started()
    job_id = producer.enqueue("work", "long", 3.0)
    wait_for("the job started", lambda: read_records(record_path))
    worker.signal(signal.SIGUSR1)
    line = worker.wait_log(STATE + r"worker \S+ running, up [\d.]+ s: (.*)").group(1)
    assert line.startswith(f"1 of 4 slots running [work {job_id}], 0 fetched and waiting, ")
    assert f"Redis {redis_server.host}:{redis_server.port}/0 connected; processed=0 " in line
    worker.signal(signal.SIGTERM)
    worker.wait_log("shutdown requested")
    worker.signal(signal.SIGUSR1)  # while draining: says so, and is no second signal
    worker.wait_log(STATE + r"worker \S+ stopping, up")
    assert worker.wait() == 0, worker.log
    assert [r["event"] for r in read_records(record_path)] == ["start", "end"]
    assert "processed=1 " in worker.log and oracle.smembers("steadfetch:workers") == set()


def test_sigusr2_is_ignored_with_a_line(
    redis_server: RedisServer,
    start_worker: StartWorker,
    producer: SyncProducer,
    record_path: Path,
) -> None:
    worker = start_worker(redis_server.url).started()
    producer.enqueue("work", "during", 1.0)
    wait_for("the job started", lambda: read_records(record_path))
    for count in (1, 2):  # one at a time: two pending signals of one kind are delivered once
        worker.signal(signal.SIGUSR2)
        worker.wait_log(r"WARNING worker.shutdown: SIGUSR2 ignored: it has no meaning", count=count)
    wait_for("the job ended", lambda: len(read_records(record_path)) == 2)
    assert worker.poll() is None
    assert worker.stop() == 0, worker.log
    assert "shutdown requested (SIGTERM" in worker.log and "processed=1 " in worker.log


def test_sigusr1_to_the_supervisor_reaches_every_started_child_and_kills_none(
    redis_server: RedisServer, start_worker: StartWorker
) -> None:
    """Sent over and over from the supervisor's first line on, through its children's start:
    a child that has not started yet is not sent it (its interpreter may still be loading)."""
    supervisor = start_worker(redis_server.url, "--processes", "2", "--concurrency", "2")
    supervisor.wait_log(r"starting 2 worker processes")

    def both_started() -> bool:
        supervisor.signal(signal.SIGUSR1)
        return len(re.findall(r"worker \S+-\d started: queues", supervisor.log)) == 2

    wait_for("both children started, under SIGUSR1", both_started, 60)
    supervisor.signal(signal.SIGUSR1)
    for index in (0, 1):
        supervisor.wait_log(STATE + rf"worker \S+-{index} running, up")
    supervisor.wait_log(STATE + r"supervisor \S+ running: worker processes \[0 pid \d+ running")
    assert "killed by SIGUSR1" not in supervisor.log
    assert "restarting it in" not in supervisor.log
    assert supervisor.stop() == 0, supervisor.log
