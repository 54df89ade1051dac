"""Acked-but-not-yet-sent jobs count inside the window's bound (issue 9 §6): with the ack path
paused, a worker holds at most concurrency + prefetch jobs in its processing list, instead of
fetching and finishing everything while nothing is acked."""

from __future__ import annotations

import asyncio
import time

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import JobSpec, Keys, Producer, RedisConnection, RetryPolicy
from steadfetch.worker import App
from steadfetch.worker.config import WorkerConfig
from steadfetch.worker.worker import Worker

KEYS = Keys()
JOBS = 200
app = App("acks")
finished = 0


@app.task
async def ok(i: int) -> None:
    global finished
    finished += 1


async def test_a_paused_ack_path_bounds_the_processing_list(redis_server: RedisServer) -> None:
    global finished
    finished = 0
    oracle = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    conn = RedisConnection.from_url(redis_server.url, retry=RetryPolicy(base=0.02, cap=0.2))
    await Producer(conn).enqueue_many([JobSpec("ok", (i,)) for i in range(JOBS)])
    config = WorkerConfig(app="acks", concurrency=4, prefetch=1, block_timeout=0.1)
    worker = Worker(app, config, conn, worker_id="acker")
    gate = asyncio.Event()
    send = worker.acks._ack_many

    async def paused(batch: list[object]) -> object:
        await gate.wait()
        return await send(batch)

    worker.acks._ack_many = paused
    processing = KEYS.processing("acker", KEYS.queue_key("default"))
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(worker.run())
        deadline = time.monotonic() + 10
        while finished < config.concurrency + 1:
            assert time.monotonic() < deadline, f"only {finished} jobs ran"
            await asyncio.sleep(0.01)
        # Watch for a while: the fetch loop must not take more while nothing is acked.
        watch_until = time.monotonic() + 1.0
        while time.monotonic() < watch_until:
            assert oracle.llen(processing) <= config.concurrency + 1
            assert finished <= config.concurrency + 1
            await asyncio.sleep(0.02)
        gate.set()
        deadline = time.monotonic() + 20
        while finished < JOBS or oracle.llen(processing):
            assert time.monotonic() < deadline, f"{finished} of {JOBS} after the acks resumed"
            await asyncio.sleep(0.02)
        worker.shutdown.request("test over")
        assert await running == 0
    assert oracle.llen(KEYS.queue_key("default")) == 0
    oracle.close()
