"""arq: ``arq arq_app.WorkerSettings`` (max_jobs 50); results are arq's result keys."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import deserialize_result

import bench_common as common

SETTINGS = RedisSettings.from_dsn(common.redis_url())


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def recorded(ctx: dict[str, Any], job_id: str) -> None:
    common.record(job_id)


class WorkerSettings:
    functions = [noop, recorded]
    redis_settings = SETTINGS
    max_jobs = 50


async def run() -> None:
    pool = await create_pool(SETTINGS)

    async def submit(ids: list[str]) -> None:
        await common.gather_chunked(lambda i: pool.enqueue_job("noop", _job_id=i), ids)

    async def submit_recorded(ids: list[str]) -> None:
        for i in ids:
            await pool.enqueue_job("recorded", i, _job_id=i)

    async def missing_of(ids: list[str]) -> tuple[list[str], int]:
        missing, failed = [], 0
        for start in range(0, len(ids), common.CHUNK):
            part = ids[start : start + common.CHUNK]
            for job_id, raw in zip(part, await pool.mget([result_key_prefix + i for i in part])):
                if raw is None:
                    missing.append(job_id)
                elif not deserialize_result(raw).success:
                    failed += 1
        return missing, failed

    await common.main(submit, submit_recorded, missing_of, pool.aclose)


if __name__ == "__main__":
    asyncio.run(run())
