"""Fetch + ack throughput against batch size (reliable mode), on a redis-server of its own.

``python -m tests.bench fetch [--jobs=N] [--repeat=N]``. Prints jobs/s for batch sizes 1, 10,
100 and 500: each round is one fetch (one Lua script moving the batch into the processing list)
plus one ack_many of the whole batch. With ``--repeat=N`` each batch size runs N times and the
line shows the best and the median run (on a shared machine the best is the steadier figure);
the load average is printed first. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from steadfetch.chaos.env.redis_server import RedisServer
from steadfetch.fetcher import Fetcher, JobSpec, Producer, RedisConnection

BATCH_SIZES = (1, 10, 100, 500)


async def _measure(url: str, batch: int, jobs: int) -> tuple[float, float, float]:
    """(jobs/s for fetch+ack, µs per job spent fetching, µs per job spent acking)."""
    conn = RedisConnection.from_url(url)
    try:
        producer = Producer(conn)
        for start in range(0, jobs, 5000):
            count = min(5000, jobs - start)
            await producer.enqueue_many([JobSpec("bench", (start + i,)) for i in range(count)])
        fetcher = Fetcher(conn, f"bench-{batch}", ["default"], block_timeout=0.1)
        done, fetching, acking = 0, 0.0, 0.0
        while done < jobs:
            started = time.perf_counter()
            taken = await fetcher.fetch(batch)
            fetched = time.perf_counter()
            await fetcher.ack_many(taken)
            fetching += fetched - started
            acking += time.perf_counter() - fetched
            done += len(taken)
        return jobs / (fetching + acking), fetching / jobs * 1e6, acking / jobs * 1e6
    finally:
        await conn.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_fetch")
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per batch size")
    parser.add_argument("--repeat", type=int, default=1, help="runs per batch size")
    args, _ = parser.parse_known_args([a for a in argv if a.startswith("--")])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    with RedisServer() as server:
        print(
            f"reliable fetch + ack_many, {args.jobs} jobs per batch size, redis {server.port}, "
            f"load average {load}"
        )
        for batch in BATCH_SIZES:
            jobs = min(args.jobs, 5_000 * batch)  # batch 1 is slow: keep the run brief
            runs = [
                asyncio.run(_measure(server.url, batch, jobs)) for _ in range(max(1, args.repeat))
            ]
            rate, fetch_us, ack_us = max(runs)
            median = (
                f", median {statistics.median(r[0] for r in runs):,.0f} of {len(runs)}"
                if len(runs) > 1
                else ""
            )
            print(
                f"  batch {batch:>4}: {rate:>10,.0f} jobs/s  "
                f"(fetch {fetch_us:5.1f} µs/job, ack {ack_us:5.1f} µs/job; {jobs} jobs{median})",
                flush=True,
            )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
