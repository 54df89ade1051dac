"""A SIGTERM that arrives right after the worker started stops it at once, every time.

Observed: a signal within ~10 ms after "started" waited out the whole block timeout in about
one stop of six. The fetch task's cancel was lost inside redis-py (``wait_for`` in
``send_packed_command``, CPython gh-86296) while the first blocking command, or the handshake
of its fresh connection, was being written; RedisConnection re-raised it only when BLMOVE
returned. The block timeout here is 30 s, so a missed interruption is unambiguous against a
per-stop deadline of 10 s (a bound for a loaded machine, not a speed claim).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import RedisConnection, RetryPolicy
from steadfetch.worker import App
from steadfetch.worker.cancellation import cancel_and_wait
from steadfetch.worker.config import WorkerConfig
from steadfetch.worker.worker import Worker

TRIALS = 30
STOP_WITHIN = 10.0
app = App("early-signal")


async def test_sigterm_at_random_moments_right_after_start_stops_the_worker(
    redis_server: RedisServer,
) -> None:
    oracle = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    rng = random.Random(9)
    late: list[int] = []
    try:
        for trial in range(TRIALS):
            conn = RedisConnection.from_url(redis_server.url, retry=RetryPolicy(base=0.02, cap=0.2))
            config = WorkerConfig(app="early-signal", concurrency=2, block_timeout=30.0)
            started = asyncio.Event()
            worker = Worker(
                app,
                config,
                conn,
                worker_id=f"early-{trial}",
                on_started=lambda _, s=started: s.set(),
            )
            async with asyncio.TaskGroup() as tg:
                running = tg.create_task(worker.run())
                await started.wait()
                await asyncio.sleep(rng.uniform(0, 0.03))  # a random moment, not a sync point
                assert not running.done()  # its handler is installed: the signal is not fatal
                os.kill(os.getpid(), signal.SIGTERM)  # the real handler that run() installed
                try:
                    async with asyncio.timeout(STOP_WITHIN):
                        assert await asyncio.shield(running) == 0
                except TimeoutError:
                    late.append(trial)
                    await cancel_and_wait([running])  # stuck in the block: end the trial
        assert late == [], f"{len(late)} of {TRIALS} stops waited out the block: {late}"
        assert oracle.smembers("steadfetch:workers") == set()
    finally:
        oracle.close()
