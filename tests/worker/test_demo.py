"""``steadfetch demo``: one command, a throwaway Redis, jobs flowing, a clean exit."""

from __future__ import annotations

import re
import socket

from tests.worker.conftest import StartWorker


def test_demo_runs_jobs_then_stops_cleanly_and_removes_its_redis(start_worker: StartWorker) -> None:
    demo = start_worker(None, "--duration", "4", "--rate", "100", "--outage", "2.5", command="demo")
    assert demo.wait(timeout=60) == 0
    log = demo.log
    port = int(re.search(r"started a throwaway redis-server on port (\d+)", log).group(1))  # type: ignore[union-attr]
    stopped = re.search(
        r"stopped after running [\d.]+ s \(shutdown took [\d.]+ s\): processed=(\d+) failed=\d+ "
        r"retried=\d+ dead_lettered=(\d+)",
        log,
    )
    assert stopped and int(stopped.group(1)) > 50
    # The outage it stages is logged descriptively, then the recovery, and no job is lost.
    assert re.search(r"Redis 127\.0\.0\.1:\d+/0 unreachable while .+ \(attempt \d+", log), log
    assert re.search(r"Redis 127\.0\.0\.1:\d+/0 reachable again after [\d.]+ s", log), log
    enqueued = re.search(r"demo producer done: (\d+) jobs enqueued", log)
    assert enqueued
    assert int(stopped.group(1)) + int(stopped.group(2)) == int(enqueued.group(1))
    assert "(task flaky, attempt 1/3) failed: RuntimeError" in log  # retries are shown
    assert "(task flaky, attempt 3/3) failed: RuntimeError: flaky job 0 failed" in log
    assert int(stopped.group(2)) >= 1  # ... and the dead letter
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        raise AssertionError(f"the throwaway redis-server on {port} is still running")
    except ConnectionRefusedError:
        pass
