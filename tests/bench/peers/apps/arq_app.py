"""arq: ``arq arq_app.WorkerSettings`` (max_jobs 50); results are arq's result keys."""

from __future__ import annotations

import asyncio
from typing import Any

import bench_common as common
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import deserialize_result

SETTINGS = RedisSettings.from_dsn(common.redis_url())


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def recorded(ctx: dict[str, Any], job_id: str) -> None:
    common.record(job_id)


class WorkerSettings:
    functions = [noop, recorded]
    redis_settings = SETTINGS
    max_jobs = 50


# ``arq --custom-log-dict arq_app.LOG``: no line per job (no peer logs one in this benchmark).
LOG = {"version": 1, "disable_existing_loggers": False,
       "handlers": {"err": {"class": "logging.StreamHandler", "level": "WARNING"}},
       "loggers": {"arq": {"handlers": ["err"], "level": "WARNING"}}}  # fmt: skip


async def run() -> None:
    pool = await create_pool(SETTINGS)

    async def submit(ids: list[str]) -> None:
        await common.gather_chunked(lambda i: pool.enqueue_job("noop", _job_id=i), ids)

    async def submit_recorded(ids: list[str]) -> None:
        for i in ids:
            await pool.enqueue_job("recorded", i, _job_id=i)

    async def states(ids: list[str]) -> list[bool | None]:
        raws = await pool.mget([result_key_prefix + i for i in ids])
        return [None if raw is None else deserialize_result(raw).success for raw in raws]

    await common.main(submit, submit_recorded, common.by_record(states), pool.aclose)


if __name__ == "__main__":
    asyncio.run(run())
