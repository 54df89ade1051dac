"""rq: ``rq worker`` (SimpleWorker or the forking Worker); done = the job's status in rq's job
hash (results kept 500 s by default). Tasks go by import path, since this file also runs as
``__main__``."""

from __future__ import annotations

import asyncio

import bench_common as common
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

connection = Redis.from_url(common.redis_url())
queue = Queue("default", connection=connection)


def noop() -> None:
    return None


def recorded(job_id: str) -> None:
    common.record(job_id)


def submit(ids: list[str]) -> None:
    queue.enqueue_many([Queue.prepare_data("rq_app.noop", job_id=i) for i in ids])


def submit_recorded(ids: list[str]) -> None:
    for i in ids:
        queue.enqueue("rq_app.recorded", i, job_id=i)


def states(ids: list[str]) -> list[bool | None]:
    done = {JobStatus.FINISHED: True, JobStatus.FAILED: False}
    jobs = Job.fetch_many(ids, connection=connection)
    return [None if job is None else done.get(job.get_status(refresh=False)) for job in jobs]


async def close() -> None:
    connection.close()


if __name__ == "__main__":
    asyncio.run(common.main(common.wrap(submit), common.wrap(submit_recorded),
                            common.by_record(states), close))  # fmt: skip
