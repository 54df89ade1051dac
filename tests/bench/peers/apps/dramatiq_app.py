"""dramatiq: ``dramatiq dramatiq_app --processes 1 --threads 50`` with its RedisBroker; done = the
message's result stored by dramatiq's Results middleware (RedisBackend)."""

from __future__ import annotations

import asyncio
import time

import bench_common as common
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from dramatiq.results.errors import ResultFailure
from dramatiq.results.result import unwrap_result

backend = RedisBackend(url=common.redis_url())
broker = RedisBroker(url=common.redis_url())
broker.add_middleware(Results(backend=backend, store_results=True))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="default")
def noop() -> None:
    return None


@dramatiq.actor(queue_name="default")
def recorded(job_id: str) -> None:
    common.record(job_id)


def message(actor: str, job_id: str, *args: str) -> dramatiq.Message[None]:
    """A message with our id (``send`` would pick a random one)."""
    return dramatiq.Message(queue_name="default", actor_name=actor, args=args, kwargs={},
                            options={}, message_id=job_id,
                            message_timestamp=int(time.time() * 1000))  # fmt: skip


def submit(ids: list[str]) -> None:
    for i in ids:
        broker.enqueue(message("noop", i))


def submit_recorded(ids: list[str]) -> None:
    for i in ids:
        broker.enqueue(message("recorded", i, i))


def state(raw: bytes | None) -> bool | None:
    if raw is None:
        return None
    try:
        unwrap_result(backend.encoder.decode(raw))
    except ResultFailure:
        return False
    return True


def states(ids: list[str]) -> list[bool | None]:
    with backend.client.pipeline(transaction=False) as pipe:
        for i in ids:
            pipe.lindex(backend.build_message_key(message("noop", i)), 0)
        return [state(raw) for raw in pipe.execute()]


async def close() -> None:
    broker.close()


if __name__ == "__main__":
    asyncio.run(common.main(common.wrap(submit), common.wrap(submit_recorded),
                            common.by_record(states), close))  # fmt: skip
