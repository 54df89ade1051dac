"""Worker benchmarks: ``python -m tests.bench worker [--jobs N] [--quick] [--processes=1,2,auto]``.

Prints, for one worker process on its own redis-server:
- no-op job throughput at concurrency 50, reliable and fast mode;
- enqueue-to-start latency p50/p99 when idle (one job at a time);
- RSS every 100k jobs over ``--jobs`` (default 1M) reliable jobs, and its slope;
- CPU used while idle.

The worker here is the production :class:`worker.worker.Worker` in this process (no
subprocess, so RSS and CPU are the worker's own). Figures only: nothing is asserted.

With ``--processes 1,2,auto`` it prints only the throughput of the real binary run with
``--processes K`` for each K (no-op jobs, then CPU-bound jobs of about 1 ms): the queue is
filled under another name, the supervisor started and its K processes registered, then the
queue renamed into place; timed until the queue and every processing list are empty.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import codec
from steadfetch.worker import App
from steadfetch.worker.commands.run import build_worker
from steadfetch.worker.config import Mode, WorkerConfig
from steadfetch.worker.stats import rss_bytes
from steadfetch.worker.supervisor import process_count
from steadfetch.worker.worker import Worker

QUEUE_KEY = "steadfetch:queue:default"
PRODUCER = """
import sys, time, redis
from steadfetch.fetcher import codec
client = redis.Redis(port=int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    time.sleep(0.01)
    payload = codec.encode(job_id=codec.new_job_id(), task="stamp", args=(time.time(),),
        kwargs={}, queue_key="steadfetch:queue:default", attempt=1, max_attempts=1,
        enqueued_at=None, format="steadfetch")
    client.rpush("steadfetch:queue:default", payload)
"""
CHUNK = 10_000

app = App("bench")
latencies: list[float] = []
latency_target = [0, asyncio.Event()]  # (samples wanted, set when reached)


@app.task
async def noop() -> None:
    return None


@app.task
async def burn(iterations: int) -> None:
    """CPU-bound: holds the event loop (and the GIL) for about a millisecond."""
    total = 0
    for i in range(iterations):
        total += i * i


@app.task
async def stamp(enqueued: float) -> None:
    latencies.append(time.time() - enqueued)
    wanted, reached = latency_target
    if len(latencies) >= wanted:  # type: ignore[operator]
        reached.set()  # type: ignore[union-attr]


def fill(
    client: redis.Redis,
    count: int,
    task: str = "noop",
    args: tuple[int, ...] = (),
    key: str = QUEUE_KEY,
) -> None:
    """RPUSH ``count`` encoded jobs in chunks (the producer is not what is measured)."""
    now = time.time()
    for start in range(0, count, CHUNK):
        payloads = [
            codec.encode(
                job_id=f"b{i}", task=task, args=args, kwargs={}, queue_key=QUEUE_KEY,
                attempt=1, max_attempts=1, enqueued_at=now, format="steadfetch",
            )
            for i in range(start, min(count, start + CHUNK))
        ]  # fmt: skip
        client.rpush(key, *payloads)


def make_worker(url: str, mode: Mode) -> Worker:
    config = WorkerConfig(app="bench", redis_url=url, concurrency=50, mode=mode,
                          heartbeat_interval=1.0)  # fmt: skip
    return build_worker(app, config)


async def drain(worker: Worker, total: int, every: int, on_mark: Callable[[int], None]) -> float:
    """Run ``worker`` until it processed ``total`` jobs; seconds from first job to last."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker.run())
        await worker.started.wait()
        began = time.perf_counter()
        mark = every
        while worker.stats.processed < total:
            await asyncio.sleep(0.01)
            while worker.stats.processed >= mark:
                on_mark(mark)
                mark += every
        elapsed = time.perf_counter() - began
        worker.shutdown.request("benchmark done")
    return elapsed


def throughput(server: RedisServer, client: redis.Redis, mode: Mode, jobs: int) -> None:
    client.flushall()
    fill(client, jobs)
    worker = make_worker(server.url, mode)
    elapsed = asyncio.run(drain(worker, jobs, jobs + 1, lambda _: None))
    print(f"throughput {mode:8} concurrency 50: {jobs / elapsed:9,.0f} jobs/s "
          f"({jobs:,} no-op jobs in {elapsed:.2f} s)", flush=True)  # fmt: skip


def memory(server: RedisServer, client: redis.Redis, jobs: int) -> None:
    client.flushall()
    fill(client, jobs)
    worker = make_worker(server.url, "reliable")
    samples: list[tuple[int, int]] = []

    def sample(mark: int) -> None:
        samples.append((mark, rss_bytes()))
        print(f"  rss after {mark:>9,} jobs: {samples[-1][1] / 2**20:7.1f} MiB", flush=True)

    elapsed = asyncio.run(drain(worker, jobs, 100_000, sample))
    xs = [m / 1e6 for m, _ in samples]
    ys = [r / 2**20 for _, r in samples]
    slope = statistics.linear_regression(xs, ys).slope if len(samples) > 1 else 0.0
    growth = (ys[-1] - ys[0]) if samples else 0.0
    print(f"rss over {jobs:,} reliable jobs ({jobs / elapsed:,.0f} jobs/s): slope "
          f"{slope:+.2f} MiB per 1M jobs, first->last {growth:+.1f} MiB", flush=True)  # fmt: skip


async def idle(server: RedisServer, client: redis.Redis, samples: int) -> None:
    client.flushall()
    worker = make_worker(server.url, "reliable")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(worker.run())
        await worker.started.wait()
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(5.0)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        print(f"idle CPU: {cpu * 100:.2f} % of one core (5 s, heartbeat every 1 s)", flush=True)
        latencies.clear()
        reached = asyncio.Event()
        latency_target[:] = [samples, reached]
        # The producer is another process, so it does not compete for this one's GIL.
        producer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PRODUCER, str(server.port), str(samples)
        )
        async with asyncio.timeout(60):
            await producer.wait()
            await reached.wait()
        worker.shutdown.request("benchmark done")
    ms = sorted(x * 1000 for x in latencies)
    p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"idle enqueue-to-start latency over {len(ms)} jobs: p50 {p50:.2f} ms, p99 {p99:.2f} ms",
          flush=True)  # fmt: skip


def processes(
    server: RedisServer,
    client: redis.Redis,
    count: int,
    task: str,
    args: tuple[int, ...],
    jobs: int,
) -> None:
    """Throughput of ``steadfetch run --processes count`` (the real binary, a supervisor)."""
    client.flushall()
    fill(client, jobs, task, args, key="bench:parked")
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADFETCH_")}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "steadfetch.worker", "run", "tests.bench.bench_worker:app",
         "--redis-url", server.url, "--concurrency", "50", "--processes", str(count),
         "--heartbeat-interval", "1"],
        cwd=root, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while client.scard("steadfetch:workers") < count:
            if time.monotonic() > deadline or supervisor.poll() is not None:
                raise RuntimeError(f"{count} worker processes did not start")
            time.sleep(0.05)
        began = time.perf_counter()
        client.rename("bench:parked", QUEUE_KEY)
        while client.llen(QUEUE_KEY) or client.keys("steadfetch:processing:*"):
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
    finally:
        supervisor.terminate()
        supervisor.wait(60)
    print(f"throughput --processes {count} ({task}, concurrency 50 each): "
          f"{jobs / elapsed:9,.0f} jobs/s ({jobs:,} jobs in {elapsed:.2f} s; "
          f"{os.cpu_count()} cores on this machine)", flush=True)  # fmt: skip


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_worker")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs for the RSS run")
    parser.add_argument("--throughput-jobs", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="small runs (a smoke test)")
    parser.add_argument(
        "--processes",
        type=lambda text: [process_count(part) for part in text.split(",")],
        default=None,
        help="only the supervisor's throughput, for each of these process counts (1,2,auto)",
    )
    parser.add_argument("--burn", type=int, default=20_000, help="loop iterations per CPU job")
    parser.add_argument("names", nargs="*", help="benchmark names (for tests.bench)")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.throughput_jobs = 200_000, 50_000
    logging.basicConfig(level=logging.WARNING)
    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        if args.processes:
            for count in args.processes:
                processes(server, client, count, "noop", (), args.throughput_jobs)
                processes(server, client, count, "burn", (args.burn,), args.throughput_jobs // 10)
            client.close()
            return
        for mode in ("reliable", "fast"):
            throughput(server, client, mode, args.throughput_jobs)  # type: ignore[arg-type]
        asyncio.run(idle(server, client, 200))
        memory(server, client, args.jobs)
        client.close()


if __name__ == "__main__":
    main(sys.argv[1:])
