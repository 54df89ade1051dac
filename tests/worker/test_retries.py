"""Job retries: max attempts and backoff from the job, the task, or the worker's flags.

Backoffs are set in hundreds of seconds so the scheduled set's scores tell, without timing
anything, which setting was applied (the default base is 1 s).
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import run_cli, wait_for


def enqueue(url: str, *args: str) -> str:
    result = run_cli("enqueue", *args, "--redis-url", url)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_retry_settings_come_from_the_job_then_the_task_then_the_worker(
    redis_server: RedisServer, start_worker: StartWorker, oracle: redis.Redis
) -> None:
    url = redis_server.url
    worker_default = enqueue(url, "fail", "a")  # worker: --max-attempts 1
    enqueue_max = enqueue(url, "fail", "b", "--max-attempts", "3")  # worker backoff 1000 s
    task_policy = enqueue(url, "fail_with_task_policy", "c")  # task: 3 attempts, 500 s
    enqueue_beats_task = enqueue(url, "fail_with_task_policy", "d", "--max-attempts", "1")
    job_backoff = enqueue(
        url, "fail_with_task_policy", "e", "--job-retry-base", "50", "--job-retry-cap", "60"
    )  # the job's own backoff beats the task's
    oracle.rpush(
        "steadfetch:queue:default",
        json.dumps({"id": "bad-backoff", "task": "fail", "args": ["f"], "retry_base": -1}),
    )  # a payload's backoff must be a positive number: dead-lettered as undecodable
    worker = start_worker(
        url, "--max-attempts", "1", "--job-retry-base", "1000", "--job-retry-cap", "2000",
        "--retry-base", "0.1", app="tests.worker.retry_app:app",
    ).started()  # fmt: skip

    def settled() -> bool:
        return oracle.llen("steadfetch:dead") + oracle.zcard("steadfetch:scheduled") == 6

    wait_for("all six jobs failed once", settled)
    dead = {json.loads(json.loads(e)["raw"])["id"] for e in oracle.lrange("steadfetch:dead", 0, -1)}
    assert dead == {worker_default, enqueue_beats_task, "bad-backoff"}
    now = time.time()
    waits = {
        json.loads(member)["id"]: score - now
        for member, score in oracle.zrange("steadfetch:scheduled", 0, -1, withscores=True)
    }
    assert set(waits) == {enqueue_max, task_policy, job_backoff}
    assert 800 < waits[enqueue_max] <= 1000.5  # the worker's --job-retry-base
    assert 300 < waits[task_policy] <= 500.5  # the task's retry_base
    assert 30 < waits[job_backoff] <= 50.5  # the job's own retry_base
    worker.wait_log(rf"job {task_policy} \(task fail_with_task_policy, attempt 1/3\) failed")
    assert "--retry-base is deprecated: use --redis-retry-base" in worker.log
    assert worker.stop() == 0


def test_a_producer_refuses_a_backoff_that_is_not_positive_seconds(producer: SyncProducer) -> None:
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="retry_base"):
            producer.enqueue("fail", "x", retry_base=bad)
