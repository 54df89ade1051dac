"""saq: ``saq saq_app.settings --workers 1`` (concurrency 50); done = the job's status in saq's
job record (kept 600 s after completion by default)."""

from __future__ import annotations

import asyncio
from typing import Any

import bench_common as common
from saq import Queue
from saq.job import Status

queue = Queue.from_url(common.redis_url())


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def recorded(ctx: dict[str, Any], *, job_id: str) -> None:
    common.record(job_id)


settings = {"queue": queue, "functions": [noop, recorded], "concurrency": 50}


async def run() -> None:
    await queue.connect()

    async def submit(ids: list[str]) -> None:
        await common.gather_chunked(lambda i: queue.enqueue("noop", key=i), ids)

    async def submit_recorded(ids: list[str]) -> None:
        for i in ids:
            await queue.enqueue("recorded", key=i, job_id=i)

    async def states(ids: list[str]) -> list[bool | None]:
        done = {Status.COMPLETE: True, Status.FAILED: False, Status.ABORTED: False}
        return [None if job is None else done.get(job.status) for job in await queue.jobs(ids)]

    await common.main(submit, submit_recorded, common.by_record(states), queue.disconnect)


if __name__ == "__main__":
    asyncio.run(run())
