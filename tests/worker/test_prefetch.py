"""The prefetch hides the round trip (issue 12 §6): with Redis a few milliseconds away, a worker
without ``--prefetch`` grows its window by Little's law (throughput x RTT) instead of fetching
only as many jobs as slots just freed, and still never holds more than concurrency + its
ceiling in its processing list; an explicit ``--prefetch`` stays fixed."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.chaos.env.toxiproxy import ToxiproxyServer
from steadfetch.fetcher import JobSpec, Keys, Producer, RedisConnection, RetryPolicy
from steadfetch.worker import App
from steadfetch.worker.config import Mode, WorkerConfig
from steadfetch.worker.redis_server import free_port
from steadfetch.worker.window import PrefetchSizer
from steadfetch.worker.worker import Worker

KEYS = Keys()
JOBS = 3000
LATENCY_MS = 10
app = App("prefetch")


@app.task
async def noop(i: int) -> None:
    return None


async def drain_through_latency(
    redis_server: RedisServer,
    toxiproxy_server: ToxiproxyServer,
    prefetch: int | None,
    mode: Mode = "reliable",
) -> tuple[Worker, int]:
    """Drain JOBS no-op jobs with every reply LATENCY_MS late; the worker and the largest
    processing-list length seen."""
    oracle = redis.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    listen = free_port()
    proxy = toxiproxy_server.api.create_proxy(
        "redis", f"127.0.0.1:{listen}", f"127.0.0.1:{redis_server.port}"
    )
    proxy.add_toxic("latency", stream="downstream", latency=LATENCY_MS)
    direct = RedisConnection.from_url(redis_server.url)
    await Producer(direct).enqueue_many([JobSpec("noop", (i,)) for i in range(JOBS)])
    await direct.close()
    conn = RedisConnection.from_url(
        f"redis://127.0.0.1:{listen}/0", retry=RetryPolicy(base=0.02, cap=0.2)
    )
    config = WorkerConfig(
        app="prefetch", concurrency=10, prefetch=prefetch, block_timeout=0.5, mode=mode
    )
    worker = Worker(app, config, conn, worker_id="prefetcher")
    processing = KEYS.processing("prefetcher", KEYS.queue_key("default"))
    most = 0
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(worker.run())
        deadline = time.monotonic() + 60
        while worker.stats.processed < JOBS or oracle.llen(processing):
            assert time.monotonic() < deadline, f"{worker.stats.processed} of {JOBS} done"
            most = max(most, oracle.llen(processing))
            await asyncio.sleep(0.005)
        worker.shutdown.request("test over")
        assert await running == 0
    assert oracle.llen(KEYS.queue_key("default")) == 0
    oracle.close()
    return worker, most


@pytest.mark.parametrize("mode", ["reliable", "fast"])
async def test_the_prefetch_grows_with_the_round_trip_within_its_ceiling(
    redis_server: RedisServer, toxiproxy_server: ToxiproxyServer, mode: Mode
) -> None:
    """Fast mode's acks take no round trip: its fetches' round trips size the prefetch."""
    worker, most = await drain_through_latency(redis_server, toxiproxy_server, None, mode)
    sizer = worker.prefetch
    assert max(sizer.rtt, sizer.fetch_rtt) >= LATENCY_MS / 1000
    # Without the sizer the prefetch stays at its floor (10% of the concurrency: 1 job).
    assert worker.window.prefetch > sizer.floor + 5, sizer
    assert most <= worker.config.concurrency + sizer.ceiling


async def test_an_explicit_prefetch_stays_fixed(
    redis_server: RedisServer, toxiproxy_server: ToxiproxyServer
) -> None:
    worker, most = await drain_through_latency(redis_server, toxiproxy_server, 2)
    assert worker.window.prefetch == 2
    assert most <= worker.config.concurrency + 2


@pytest.mark.parametrize("payload_bytes", [1000, 1_000_000])
def test_the_byte_budget_bounds_the_prefetch(payload_bytes: int) -> None:
    sizer = PrefetchSizer(floor=2, ceiling=1000, byte_budget=16_000_000)
    sizer.fetched(10, 10 * payload_bytes, 0.01, complete=True)
    for step in range(1, 50):  # 500 jobs acked every 10 ms, each ack taking 10 ms
        sizer.acked(500, 0.01, step * 0.01)
    wanted = round(50_000 * 0.01 * 3)  # throughput x (a fetch's and two acks' round trips)
    assert sizer.prefetch == min(1000, 16_000_000 // payload_bytes, wanted)


def test_an_idle_worker_falls_back_to_the_floor() -> None:
    sizer = PrefetchSizer(floor=2, ceiling=1000, byte_budget=16_000_000)
    for step in range(1, 20):
        sizer.acked(500, 0.01, step * 0.01)
    assert sizer.prefetch > 100
    now = 1.0
    for _ in range(30):  # one job a second
        now += 1.0
        sizer.acked(1, 0.01, now)
    assert sizer.prefetch == 2


def test_a_slow_link_bounds_the_prefetch_by_what_it_moves_within_the_transfer_time() -> None:
    """On a 1 KB/s link a bigger batch only takes longer (its reply, or the ack carrying its
    payloads, would outgrow the read timeout): the prefetch holds what the link moves in
    ``transfer_seconds``, however long the round trips that Little's law sees."""
    slow = PrefetchSizer(floor=0, ceiling=40, byte_budget=16_000_000, transfer_seconds=0.5)
    unbounded = PrefetchSizer(floor=0, ceiling=40, byte_budget=16_000_000)
    for sizer in (slow, unbounded):
        sizer.fetched(4, 4 * 150, 0.6, complete=True)  # 600 bytes of payloads in 0.6 s
        now = 0.0
        for _ in range(30):  # 4 jobs acked at a time, each ack taking 0.6 s too
            now += 0.6
            sizer.acked(4, 0.6, now)
    # Little's law wants rate x (fetch + 2 acks) = 6.7/s x 1.8 s = 12 jobs; the link moves
    # ~1000 bytes/s x 0.5 s / 150 bytes a job = 3 jobs in the transfer time.
    assert unbounded.prefetch >= 10
    assert slow.prefetch == 3
