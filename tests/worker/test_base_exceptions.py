"""One job's failure never stops a worker, whatever its handler raises: every BaseException
subclass a handler can raise (GeneratorExit, a library's own BaseException, SystemExit,
KeyboardInterrupt, a CancelledError nobody asked for), from a coroutine or from a thread, ends
that job (dead-lettered at max attempts 1) and the worker goes on to run the next ones."""

from __future__ import annotations

import json

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import SyncProducer
from tests.worker.base_exception_app import RAISED
from tests.worker.conftest import StartWorker
from tests.worker.harness import read_records, wait_for

APP = "tests.worker.base_exception_app:app"


def test_a_handler_raising_any_base_exception_ends_its_job_not_the_worker(
    redis_server: RedisServer,
    start_worker: StartWorker,
    record_path: object,
    oracle: redis.Redis,
    producer: SyncProducer,
) -> None:
    worker = start_worker(redis_server.url, "--concurrency", "4", app=APP)
    worker.started()
    for name in RAISED:
        producer.enqueue("raises", name, max_attempts=1)
        producer.enqueue("raises_in_thread", name, max_attempts=1)
    tokens = [f"after-{i}" for i in range(20)]
    for token in tokens:
        producer.enqueue("ok", token)

    def all_done() -> bool | None:
        records = read_records(record_path)  # type: ignore[arg-type]
        ended = {r["token"] for r in records if r["event"] == "end"}
        if (code := worker.poll()) is not None:
            raise AssertionError(f"worker exited ({code}):\n{worker.log}")
        dead = oracle.llen("steadfetch:dead")
        return (set(tokens) <= ended and dead == 2 * len(RAISED)) or None

    wait_for("every job done or dead-lettered", all_done)
    dead = [json.loads(raw) for raw in oracle.lrange("steadfetch:dead", 0, -1)]
    assert sorted(json.loads(entry["raw"])["task"] for entry in dead) == sorted(
        ["raises", "raises_in_thread"] * len(RAISED)
    ), dead
    assert worker.stop() == 0, worker.log
    assert "unexpected error" not in worker.log, worker.log
