"""A key of the wrong type met inside a Lua script, through the real binary: the line that says
why the worker stopped names the key, the command and what the worker was doing."""

from __future__ import annotations

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Keys
from tests.worker.conftest import StartWorker

KEYS = Keys()


def test_a_shared_key_of_the_wrong_type_stops_the_worker_naming_it(
    redis_server: RedisServer, oracle: redis.Redis, start_worker: StartWorker
) -> None:
    """The scheduled zset overwritten with a string: the scheduler's first promotion fails,
    exit 2 (a configuration error). Failed before: the line said only "WRONGTYPE Operation
    against a key holding the wrong kind of value script: ..., on @user_script:12"."""
    oracle.set(KEYS.scheduled, "a string")
    worker = start_worker(redis_server.url)
    assert worker.wait() == 2, worker.log
    assert (
        f"refused promoting due scheduled jobs: ResponseError WRONGTYPE ZRANGEBYSCORE refused: "
        f"key {KEYS.scheduled} holds a string"
    ) in worker.log
