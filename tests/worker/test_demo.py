"""``steadfetch demo``: one command, a throwaway Redis, jobs flowing, a clean exit."""

from __future__ import annotations

import re
import socket

from tests.worker.conftest import StartWorker


def test_demo_runs_jobs_then_stops_cleanly_and_removes_its_redis(start_worker: StartWorker) -> None:
    demo = start_worker(None, "--duration", "2", "--rate", "100", command="demo")
    assert demo.wait(timeout=60) == 0
    log = demo.log
    port = int(re.search(r"started a throwaway redis-server on port (\d+)", log).group(1))  # type: ignore[union-attr]
    stopped = re.search(r"stopped after [\d.]+ s: processed=(\d+) failed=(\d+)", log)
    assert stopped and int(stopped.group(1)) > 50
    assert "(task flaky, attempt 1/3) failed: RuntimeError" in log  # retries are shown
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        raise AssertionError(f"the throwaway redis-server on {port} is still running")
    except ConnectionRefusedError:
        pass
