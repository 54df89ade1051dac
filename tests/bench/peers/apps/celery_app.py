"""Celery: ``celery -A celery_app worker -P prefork|threads -c 50`` with its Redis broker; done =
the task's state in the Redis result backend."""

from __future__ import annotations

import asyncio

import bench_common as common
from celery import Celery
from celery import states as celery_states

app = Celery("bench", broker=common.redis_url(), backend=common.redis_url())
app.conf.update(result_expires=3600, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)  # fmt: skip


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="recorded")
def recorded(job_id: str) -> None:
    common.record(job_id)


def submit(ids: list[str]) -> None:
    for i in ids:
        noop.apply_async(task_id=i)


def submit_recorded(ids: list[str]) -> None:
    for i in ids:
        recorded.apply_async((i,), task_id=i)


def states(ids: list[str]) -> list[bool | None]:
    backend = app.backend
    metas = backend.mget([backend.get_key_for_task(i) for i in ids])
    found: list[bool | None] = []
    for raw in metas:
        status = backend.decode_result(raw)["status"] if raw else None
        found.append(None if status not in celery_states.READY_STATES else
                     status == celery_states.SUCCESS)  # fmt: skip
    return found


async def close() -> None:
    app.close()


if __name__ == "__main__":
    asyncio.run(common.main(common.wrap(submit), common.wrap(submit_recorded),
                            common.by_record(states), close))  # fmt: skip
