"""Issue 9 §1 through the real binary: ``steadfetch enqueue --delay`` into a queue key of the
wrong type is refused (exit 2, one line saying why), nothing written; a due job for such a queue
is dead-lettered and the worker goes on."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Keys, SyncProducer
from tests.worker.conftest import StartWorker
from tests.worker.harness import read_records, wait_for

KEYS = Keys()


def test_enqueue_with_delay_into_a_wrong_type_queue_is_refused(
    redis_server: RedisServer, oracle: redis.Redis, start_worker: StartWorker
) -> None:
    oracle.set(KEYS.queue_key("broken"), "a string")
    proc = start_worker(
        redis_server.url, "work", '"x"', "--queue", "broken", "--delay", "5", command="enqueue"
    )
    assert proc.wait() == 2, proc.log
    assert "steadfetch:queue:broken holds a string" in proc.log
    assert "nothing was written" in proc.log
    assert oracle.zcard(KEYS.scheduled) == 0


def test_a_due_job_for_a_wrong_type_queue_does_not_stop_a_worker(
    redis_server: RedisServer, oracle: redis.Redis, start_worker: StartWorker, record_path: Path
) -> None:
    """Observed: promotion failed with WRONGTYPE and every worker, even one serving other
    queues, exited 2; no job ran anywhere until someone removed the entry by hand."""
    broken = KEYS.queue_key("broken")
    oracle.set(broken, "a string")
    bad = json.dumps({"id": "bad", "task": "work", "args": ["bad"], "queue": broken})
    oracle.zadd(KEYS.scheduled, {bad: 0})
    worker = start_worker(redis_server.url, "--queues", "other").started()
    wait_for("the entry to be dead-lettered", lambda: oracle.llen(KEYS.dead) == 1)
    (entry,) = [json.loads(e) for e in oracle.lrange(KEYS.dead, 0, -1)]
    assert entry["raw"] == bad and "holds a string, not a list" in entry["reason"]
    with SyncProducer(redis_server.url, deadline=10.0) as producer:
        producer.enqueue("work", "good", queue="other")
    wait_for("the good job", lambda: any(r["token"] == "good" for r in read_records(record_path)))
    assert worker.poll() is None
    assert worker.stop() == 0
