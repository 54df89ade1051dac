"""The production image against a Redis container on one Docker network (issue 10 §3).

The image's own example app runs (``example_jobs:app``: each job logs "order N processed on
HOST"); jobs go in from the host through the Redis container's loopback-published port.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import redis

from steadfetch.chaos.env.containers import REDIS_IMAGE
from steadfetch.fetcher import Keys, SyncProducer
from steadfetch.fetcher.codec import decode
from tests.docker.conftest import LABEL, wait_logged

pytestmark = pytest.mark.docker
PROCESSED = re.compile(rb"order (\d+) processed on ")
#: docker stop's default wait before SIGKILL; the image's grace period (8 s) fits inside it.
STOP_TIMEOUT = 10


def processed(container: Any) -> set[int]:
    return {int(n) for n in PROCESSED.findall(container.logs())}


def host_port(container: Any, port: str) -> int:
    container.reload()
    return int(container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])


def test_image_runs_jobs_turns_healthy_and_stops_cleanly(
    docker_engine: Any, worker_image: str, network: Any
) -> None:
    run = docker_engine.containers.run
    redis_box = run(
        REDIS_IMAGE, detach=True, name=f"{network.name}-redis", labels=LABEL,
        network=network.name, ports={"6379/tcp": ("127.0.0.1", None)},
    )  # fmt: skip
    worker = run(
        worker_image, detach=True, name=f"{network.name}-worker", labels=LABEL,
        network=network.name,
        environment={
            "STEADFETCH_REDIS_URL": f"redis://{network.name}-redis:6379/0",
            "STEADFETCH_CONCURRENCY": "4",
        },
        # Only the interval changes (Test unset inherits the image's /healthz probe).
        healthcheck={"interval": 1_000_000_000, "start_period": 0, "retries": 3},
    )  # fmt: skip
    url = f"redis://127.0.0.1:{host_port(redis_box, '6379/tcp')}/0"
    with SyncProducer(url) as producer:
        quick = range(1, 11)
        producer.enqueue_many(
            [{"task": "process_order", "args": [n, 0.01]} for n in quick]
        )  # fmt: skip
        wait_logged("the quick jobs done", lambda: set(quick) <= processed(worker), worker)
        wait_logged("the health check to say healthy", lambda: health(worker) == "healthy", worker)

        # Slow jobs, 4 at a time: a stop lands while some run and most still wait.
        slow = range(100, 120)
        producer.enqueue_many([{"task": "process_order", "args": [n, 1.5]} for n in slow])
        wait_logged("the first slow jobs done", lambda: processed(worker) & set(slow), worker)
        started = time.monotonic()
        worker.stop(timeout=STOP_TIMEOUT)
        stopped_in = time.monotonic() - started

    worker.reload()
    state = worker.attrs["State"]
    logs = worker.logs().decode()
    assert state["ExitCode"] == 0, (state, logs[-2000:])
    assert stopped_in < STOP_TIMEOUT, stopped_in  # exit 0 already says: not SIGKILLed
    assert "stopped after" in logs

    # Nothing lost: every slow job ran or is back in its queue; no processing list is left.
    done, waiting, processing = processed(worker), *queue_state(url)
    assert processing == []
    assert set(slow) <= done | waiting, sorted(set(slow) - done - waiting)
    assert set(slow) - done, "every job ran before the stop: it tested no requeue"


def health(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status"))


def queue_state(url: str) -> tuple[set[int], list[str]]:
    """Order numbers waiting in the default queue, and the processing lists that exist."""
    keys = Keys()
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        queue_key = keys.queue_key("default")
        waiting = {decode(raw, queue_key, keys).args[0] for raw in client.lrange(queue_key, 0, -1)}
        processing = [key.decode() for key in client.scan_iter(match="steadfetch:processing:*")]
    finally:
        client.close()
    return waiting, processing
