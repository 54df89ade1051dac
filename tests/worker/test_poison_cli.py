"""The producer side of issue 9 §1 through the real binary: ``steadfetch enqueue --delay`` into
a queue key of the wrong type is refused (exit 2, one line saying why), nothing written."""

from __future__ import annotations

import redis

from chaos.env.redis_server import RedisServer
from fetcher import Keys
from tests.worker.conftest import StartWorker

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
