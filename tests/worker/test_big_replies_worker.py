"""The observation of issue 9 §3 through the real binary: with ``client-output-buffer-limit
normal 256kb 0 0`` and 40 KB jobs, one worker used to take the whole queue into its processing
list and do nothing (nothing done in 25 s). Now every job runs, once."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import JobSpec, Keys, SyncProducer
from tests.fixtures import require
from tests.worker.conftest import StartWorker
from tests.worker.harness import wait_for

JOBS = 100


@pytest.fixture
def small_buffers() -> Iterator[RedisServer]:
    args = ["--client-output-buffer-limit", "normal 256kb 0 0"]
    server = require(lambda: RedisServer(extra_args=args).start())
    try:
        yield server
    finally:
        server.close()


def test_40kb_jobs_all_run_under_a_256kb_output_buffer_limit(
    small_buffers: RedisServer, start_worker: StartWorker, record_path: Path
) -> None:
    tokens = [f"t{i}-" + "x" * 40_000 for i in range(JOBS)]
    with SyncProducer(small_buffers.url, deadline=10.0) as producer:
        producer.enqueue_many([JobSpec("work", (token,)) for token in tokens])
    worker = start_worker(small_buffers.url, "--concurrency", "50").started()

    def ended() -> Counter[str]:
        """Tokens of ended jobs; a 40 KB record line may be read half-written: skip it."""
        found: Counter[str] = Counter()
        for line in record_path.read_text().splitlines() if record_path.exists() else []:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record["event"] == "end":
                    found[record["token"].split("-")[0]] += 1
        return found

    done = wait_for(f"{JOBS} jobs to end", lambda: len(ended()) >= JOBS and ended())
    assert all(count == 1 for count in done.values())
    assert worker.stop() == 0
    assert "may have been lost" in worker.log  # it said why it slowed down
    client = redis.Redis(host=small_buffers.host, port=small_buffers.port)
    keys = Keys()
    assert client.llen(keys.queue_key("default")) == 0 and client.llen(keys.dead) == 0
    client.close()
