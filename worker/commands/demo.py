"""``steadfetch demo``: a throwaway Redis, a worker with the demo handlers, and a producer.

One command for a new user to see jobs flow, fail, retry and drain, then a clean shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Iterator

from steadfetch.fetcher import Admin, JobSpec, Producer
from steadfetch.worker.commands.common import connect
from steadfetch.worker.commands.run import build_worker, run_worker
from steadfetch.worker.config import WorkerConfig
from steadfetch.worker.demo import app
from steadfetch.worker.logs import LOG_FORMATS
from steadfetch.worker.options import non_negative_float, positive_float
from steadfetch.worker.throwaway_redis import ThrowawayRedis
from steadfetch.worker.worker import Worker

log = logging.getLogger("worker.demo")
DRAIN_TIMEOUT = 15.0  # after producing: time for queued jobs and retries to finish


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("demo", help="see it work: throwaway Redis, a worker and a producer")
    p.add_argument(
        "--redis-url",
        default=None,
        help="use this Redis instead of starting a throwaway redis-server",
    )
    p.add_argument("--duration", type=positive_float, default=15.0, help="seconds to produce jobs")
    p.add_argument("--rate", type=positive_float, default=200.0, help="jobs enqueued per second")
    p.add_argument(
        "--outage",
        type=non_negative_float,
        default=4.0,
        help="halfway through, freeze the throwaway Redis (SIGSTOP) for this many "
        "seconds to show an outage and the recovery; 0: none",
    )
    p.add_argument("--log-format", default="text", choices=LOG_FORMATS, help="log format")
    p.add_argument("--live", action="store_true", help="show the live dashboard")
    p.add_argument(
        "--no-color", action="store_true", help="no colours in the dashboard (NO_COLOR works too)"
    )
    p.set_defaults(func=demo_command, parser=p)


@contextlib.contextmanager
def redis_for_demo(url: str | None) -> Iterator[tuple[str, ThrowawayRedis | None]]:
    """The user's Redis (never faulted), or a throwaway one the demo may freeze."""
    if url is not None:
        yield url, None
        return
    with ThrowawayRedis() as redis:
        log.info("started a throwaway redis-server on port %d (removed afterwards)", redis.port)
        yield redis.url, redis


async def outage(worker: Worker, redis: ThrowawayRedis, args: argparse.Namespace) -> None:
    """Halfway through, freeze Redis for ``--outage`` s: the logs show the outage and recovery."""
    await worker.started.wait()
    await asyncio.sleep(args.duration / 2)
    if worker.shutdown.requested.is_set():
        return
    log.warning(
        "demo: freezing Redis (SIGSTOP) for %.0f s to show an outage; watch the worker say "
        "what failed, retry with backoff, and recover without losing a job",
        args.outage,
    )
    redis.pause()
    try:
        await asyncio.sleep(args.outage)
    finally:
        redis.resume()
    log.warning("demo: Redis thawed (SIGCONT)")


def demo_jobs(counter: itertools.count[int]) -> Iterator[JobSpec]:
    yield JobSpec("flaky", (0,), queue="default", max_attempts=3)  # always fails: dead letter
    while True:
        n = next(counter)
        kind = random.random()
        if kind < 0.5:
            yield JobSpec("greet", (f"user-{n}",), queue="default")
        elif kind < 0.8:
            yield JobSpec("resize", (640, 480), queue="default")
        elif kind < 0.85:
            yield JobSpec("flaky", (n,), queue="default", max_attempts=3)
        else:
            yield JobSpec("greet", (f"vip-{n}",), queue="high")


async def produce(worker: Worker, args: argparse.Namespace, url: str) -> None:
    """Enqueue ``--rate`` jobs/s for ``--duration`` s, then ask the worker to stop."""
    producer_args = argparse.Namespace(
        redis_url=url,
        connect_timeout=2.0,
        read_timeout=5.0,
        redis_retry_base=0.1,
        redis_retry_cap=2.0,
        durability=None,  # the demo's Redis has no replica to wait for
    )
    conn = connect(producer_args, deadline=10.0, name="steadfetch-demo-producer")
    loop = asyncio.get_running_loop()
    try:
        await worker.started.wait()
        jobs = demo_jobs(itertools.count(1))
        producer = Producer(conn, deadline=10.0)
        end = loop.time() + args.duration
        tick = 0.1
        sent = 0
        while loop.time() < end and not worker.shutdown.requested.is_set():
            batch = [next(jobs) for _ in range(max(1, round(args.rate * tick)))]
            await producer.enqueue_many(batch)
            sent += len(batch)
            await asyncio.sleep(tick)
        log.info("demo producer done: %d jobs enqueued; letting the worker drain them", sent)
        await drained(Admin(conn, deadline=10.0), worker, loop.time() + DRAIN_TIMEOUT)
    finally:
        await conn.close()
    worker.shutdown.request("demo finished")


async def drained(admin: Admin, worker: Worker, deadline: float) -> None:
    """Wait until queues and retries are empty and nothing runs (or the deadline passes)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and not worker.shutdown.requested.is_set():
        status = await admin.status()
        waiting = sum(status["queues"].values()) + status["scheduled"] + worker.window.running
        if waiting == 0:
            return
        await asyncio.sleep(0.2)


async def report(worker: Worker) -> None:
    """A progress line every 2 s (without --live)."""
    await worker.started.wait()
    while not worker.shutdown.requested.is_set():
        await asyncio.sleep(2.0)
        if worker.shutdown.requested.is_set():
            return
        snap = worker.stats.snapshot()
        log.info(
            "demo: processed=%d failed=%d retried=%d dead_lettered=%d in_flight=%d jobs/s=%.0f",
            snap["processed"],
            snap["failed"],
            snap["retried"],
            snap["dead_lettered"],
            snap["in_flight"],
            snap["jobs_per_second"],
        )


async def demo(args: argparse.Namespace, url: str, redis: ThrowawayRedis | None) -> int:
    config = WorkerConfig(
        app="steadfetch.worker.demo:app",
        queues=("high", "default"),
        concurrency=20,
        redis_url=url,
        grace_period=5.0,
        heartbeat_interval=1.0,
        # Short timeouts and backoff, so the demo's outage shows within a second or two.
        read_timeout=1.0,
        redis_retry_cap=1.0,
    )
    worker = build_worker(app, config)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(produce(worker, args, url))
        if redis is not None and args.outage > 0:
            tg.create_task(outage(worker, redis, args))
        if not args.live:
            tg.create_task(report(worker))
        code = await run_worker(worker, live=args.live, no_color=args.no_color)
    return code


def demo_command(args: argparse.Namespace) -> int:
    with redis_for_demo(args.redis_url) as (url, redis):
        return asyncio.run(demo(args, url, redis))
