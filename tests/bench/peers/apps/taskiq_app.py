"""taskiq + taskiq-redis: ``taskiq worker taskiq_app:broker --workers 1 --max-async-tasks 50``
with ListQueueBroker; done = the task's result in RedisAsyncResultBackend."""

from __future__ import annotations

import asyncio

import bench_common as common
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend
from taskiq_redis.exceptions import ResultIsMissingError

backend: RedisAsyncResultBackend[None] = RedisAsyncResultBackend(common.redis_url(),
                                                                 result_ex_time=3600)  # fmt: skip
broker = ListQueueBroker(common.redis_url()).with_result_backend(backend)


@broker.task(task_name="noop")
async def noop() -> None:
    return None


@broker.task(task_name="recorded")
async def recorded(job_id: str) -> None:
    common.record(job_id)


async def run() -> None:
    await broker.startup()

    async def submit(ids: list[str]) -> None:
        await common.gather_chunked(lambda i: noop.kicker().with_task_id(i).kiq(), ids)

    async def submit_recorded(ids: list[str]) -> None:
        for i in ids:
            await recorded.kicker().with_task_id(i).kiq(i)

    async def state(task_id: str) -> bool | None:
        try:
            return not (await backend.get_result(task_id)).is_err
        except ResultIsMissingError:
            return None

    async def states(ids: list[str]) -> list[bool | None]:
        return list(await asyncio.gather(*(state(i) for i in ids)))

    await common.main(submit, submit_recorded, common.by_record(states), broker.shutdown)


if __name__ == "__main__":
    asyncio.run(run())
