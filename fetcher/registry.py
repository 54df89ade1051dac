"""The worker registry: who is alive (heartbeat keys with a TTL) and recovery of the dead.

A worker is registered in ``steadfetch:workers`` with the set of queue keys it may hold jobs
from (``steadfetch:worker-queues:{id}``), so recovery can find every processing list of a dead
worker without scanning the keyspace. A heartbeat re-registers: a worker that was cut off long
enough to be declared dead (its jobs went back to their queues) rejoins when it is back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from fetcher.connection import RedisConnection
from fetcher.keys import Keys
from fetcher.scripts import RECOVER, WAKE_BOUND

log = logging.getLogger("fetcher.registry")


class WorkerRegistration:
    """One worker's entry in the registry (used by :class:`fetcher.Fetcher`)."""

    def __init__(
        self, conn: RedisConnection, keys: Keys, worker_id: str, queue_keys: Sequence[str]
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.worker_id = worker_id
        self.queue_keys = list(queue_keys)

    def _join(self, pipe: Pipeline) -> None:
        pipe.sadd(self.keys.workers, self.worker_id)
        pipe.sadd(self.keys.worker_queues(self.worker_id), *self.queue_keys)

    async def register(self, ttl: float, queues: Sequence[str]) -> None:
        """Join, with a first heartbeat (unless one is already there) that lives ``ttl`` s."""
        first = json.dumps(
            {"worker_id": self.worker_id, "registered_at": time.time(), "queues": list(queues)}
        )

        async def run(r: Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.set(self.keys.heartbeat(self.worker_id), first, px=_ms(ttl), nx=True)
            self._join(pipe)
            await pipe.execute()

        await self.conn.execute(f"registering worker {self.worker_id}", run)

    async def heartbeat(self, payload: dict[str, Any], ttl: float) -> None:
        body = json.dumps(payload, default=str)

        async def run(r: Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.set(self.keys.heartbeat(self.worker_id), body, px=_ms(ttl))
            self._join(pipe)
            await pipe.execute()

        await self.conn.execute(f"writing the heartbeat of worker {self.worker_id}", run)

    async def unregister(self) -> None:
        async def run(r: Redis) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.srem(self.keys.workers, self.worker_id)
            pipe.delete(
                self.keys.worker_queues(self.worker_id), self.keys.heartbeat(self.worker_id)
            )
            await pipe.execute()

        await self.conn.execute(f"unregistering worker {self.worker_id}", run)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


async def recover_dead_workers(
    conn: RedisConnection, keys: Keys, *, caller: str | None = None
) -> int:
    """Move the jobs of every registered worker whose heartbeat is gone back to the head of
    their queues, in order (one atomic script: concurrent recoverers never duplicate a job).
    ``caller``, the recovering worker itself, is never taken for dead."""
    args: list[Any] = [
        keys.heartbeat_prefix,
        keys.worker_queues_prefix,
        keys.processing_prefix,
        keys.wake(""),
        WAKE_BOUND,
        caller or "",
    ]
    moved, removed = await conn.execute(
        "recovering the jobs of dead workers", RECOVER.bind([keys.workers], args)
    )
    if removed:
        log.warning("recovered %d job(s) from %d dead worker(s)", moved, removed)
    return int(moved)
