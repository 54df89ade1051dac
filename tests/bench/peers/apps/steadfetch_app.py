"""steadfetch: ``steadfetch run steadfetch_app:app``; done = the processed count its heartbeats
carry (``--heartbeat-interval 0.1`` in this benchmark), failed = their failed count."""

from __future__ import annotations

import asyncio

import bench_common as common

from steadfetch.fetcher import Admin, JobSpec, Producer, RedisConnection
from steadfetch.worker import App

app = App("bench")


@app.task
async def noop() -> None:
    return None


@app.task
async def recorded(job_id: str) -> None:
    common.record(job_id)


async def run() -> None:
    conn = RedisConnection.from_url(common.redis_url())
    producer, admin = Producer(conn), Admin(conn)

    async def submit(ids: list[str]) -> None:
        await producer.enqueue_many([JobSpec("noop", job_id=i, max_attempts=1) for i in ids])

    async def submit_recorded(ids: list[str]) -> None:
        # The restart run's feeder retries an enqueue whose reply the restart cut: with its id
        # reserved (idempotent enqueue, the product's answer to that) the retry is not a second
        # job. Without it, one run counted a job "run twice" that had been enqueued twice.
        specs = [JobSpec("recorded", (i,), job_id=i, unique_for=300.0) for i in ids]
        await producer.enqueue_many(specs)

    async def counts() -> tuple[int, int]:
        beats = await admin.workers()
        return sum(int(b.get("processed", 0)) for b in beats), sum(
            int(b.get("failed", 0)) for b in beats
        )

    await common.main(submit, submit_recorded, common.by_count(counts), conn.close)


if __name__ == "__main__":
    asyncio.run(run())
